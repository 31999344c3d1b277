//! The kernel functions candle-metal-kernels' `.metal` sources instantiate, found mechanically:
//! each file goes through the C preprocessor (`cpp` from gcc, which expands the instantiation
//! macros exactly as Metal's front end does), with empty stand-ins for the `<metal_*>` headers,
//! then every `[[host_name("…")]]` (string pieces concatenated) and every non-template
//! `kernel void NAME(` is collected, per file: a kernel is only found in the library its
//! `call_*` function loads (`Source::Unary` → `unary.metal`).
//!
//! The preprocessor runs with the macros an Apple-silicon Metal 3.1 compiler predefines and the
//! sources test: `__HAVE_BFLOAT__` (bfloat instantiations) and `__METAL_VERSION__=310`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What the sources are preprocessed with: the compiler's predefined macros they test.
pub const DEFINES: [&str; 2] = ["-D__HAVE_BFLOAT__", "-D__METAL_VERSION__=310"];

/// The instantiated kernel names of each `.metal` file (`unary.metal` → {`exp_f32`, …}).
#[derive(Clone, Debug, Default)]
pub struct Library {
    pub files: BTreeMap<String, BTreeSet<String>>,
}

impl Library {
    /// Expands and reads every `.metal` file of `dir` (candle-metal-kernels' `src/metal_src`).
    pub fn load(dir: &Path) -> Result<Library, String> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "metal"))
            .collect();
        paths.sort();
        let stubs = Stubs::for_sources(&paths)?;
        let mut files = BTreeMap::new();
        for p in &paths {
            let expanded = expand(p, &stubs.dir)?;
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            files.insert(name, kernel_names(&expanded));
        }
        Ok(Library { files })
    }

    /// Whether `file` instantiates `name`. A name ending in `*` asks for any kernel with that
    /// prefix (a family whose last parts, such as a GEMM tile, are chosen at run time).
    pub fn has(&self, file: &str, name: &str) -> bool {
        let Some(names) = self.files.get(file) else {
            return false;
        };
        match name.strip_suffix('*') {
            Some(prefix) => names.iter().any(|n| n.starts_with(prefix)),
            None => names.contains(name),
        }
    }

    /// The file instantiating `name`, if any does (for reports).
    pub fn file_of(&self, name: &str) -> Option<&str> {
        self.files
            .iter()
            .find(|(_, names)| names.contains(name))
            .map(|(f, _)| f.as_str())
    }

    pub fn count(&self) -> usize {
        self.files.values().map(BTreeSet::len).sum()
    }
}

/// Empty stand-ins for the system headers the sources include, in a folder removed on drop.
struct Stubs {
    dir: PathBuf,
}

impl Stubs {
    fn for_sources(paths: &[PathBuf]) -> Result<Stubs, String> {
        let dir = std::env::temp_dir().join(format!("repro-metal-stubs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for p in paths {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            for line in text.lines() {
                let l = line.trim();
                if let Some(h) = l
                    .strip_prefix("#include <")
                    .and_then(|r| r.strip_suffix('>'))
                {
                    std::fs::write(dir.join(h), "").map_err(|e| format!("{h}: {e}"))?;
                }
            }
        }
        Ok(Stubs { dir })
    }
}

impl Drop for Stubs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `cpp -x c++ -P -nostdinc -I<stubs> <DEFINES> <file>`: the file with its macros expanded.
pub fn expand(file: &Path, stubs: &Path) -> Result<String, String> {
    let out = Command::new("cpp")
        .args(["-x", "c++", "-P", "-nostdinc"])
        .arg(format!("-I{}", stubs.display()))
        .args(DEFINES)
        .arg(file)
        .output()
        .map_err(|e| {
            format!(
                "cannot run `cpp` (the C preprocessor, from gcc; `apt-get install cpp`) to expand \
                 the Metal sources' macros: {e}"
            )
        })?;
    if !out.status.success() {
        return Err(format!(
            "cpp failed on {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The kernel names a preprocessed source instantiates: `[[host_name("a" "_" "f32")]]` (the
/// pieces concatenated, as C++ does) and `kernel void NAME(` outside a template declaration.
pub fn kernel_names(src: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = src;
    while let Some(p) = rest.find("host_name(") {
        rest = &rest[p + "host_name(".len()..];
        let close = rest.find(')').unwrap_or(rest.len());
        let pieces = super::rust_src::literals(&rest[..close]);
        if !pieces.is_empty() {
            names.insert(pieces.concat());
        }
    }
    let b = src.as_bytes();
    let mut at = 0;
    while let Some(p) = src[at..].find("kernel") {
        let k = at + p;
        at = k + 6;
        let before_ok = k == 0 || !is_ident(b[k - 1]);
        let after = src[at..].trim_start_matches("]]").trim_start();
        let Some(decl) = after.strip_prefix("void") else {
            continue;
        };
        if !before_ok || !decl.starts_with(|c: char| c.is_whitespace()) {
            continue;
        }
        let name: String = decl
            .trim_start()
            .chars()
            .take_while(|&c| is_ident(c as u8))
            .collect();
        let stmt_start = src[..k].rfind([';', '}']).map(|i| i + 1).unwrap_or(0);
        if !name.is_empty() && !src[stmt_start..k].contains("template") {
            names.insert(name);
        }
    }
    names
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}
