//! The code's shape, checked: no hand-written Rust file over 600 lines and no function over 150,
//! so a module says what it holds and a function fits a screen or two. Generated programs
//! (`repro/sweep-repros/`, `repro/upstream-repros/`) are not hand-written and not counted.

use std::path::{Path, PathBuf};

const FILE_MAX: usize = 600;
const FN_MAX: usize = 150;
const GENERATED: [&str; 2] = ["repro/sweep-repros", "repro/upstream-repros"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if p.is_dir() {
            let rel = p
                .strip_prefix(root())
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if name == "target" || name.starts_with('.') || GENERATED.contains(&rel.as_str()) {
                continue;
            }
            rust_files(&p, out);
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

/// `(first line, length)` of every `fn` whose body rustfmt closes at the same indent.
fn functions(text: &str) -> Vec<(usize, usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        let indent = &l[..l.len() - t.len()];
        let head = t
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub(super) ")
            .trim_start_matches("pub ")
            .trim_start_matches("const ")
            .trim_start_matches("unsafe ");
        if !head.starts_with("fn ") || t.ends_with(';') {
            continue;
        }
        let close = format!("{indent}}}");
        if let Some(end) = lines[i..].iter().position(|x| *x == close) {
            let name = head[3..].split(['(', '<']).next().unwrap_or("").to_string();
            out.push((i + 1, end + 1, name));
        }
    }
    out
}

#[test]
fn no_file_over_600_lines_and_no_function_over_150() {
    let mut files = Vec::new();
    for top in ["crates", "repro", "tests", "tools"] {
        let d = root().join(top);
        if d.is_dir() {
            rust_files(&d, &mut files);
        }
    }
    assert!(files.len() > 50, "only {} Rust files found", files.len());
    let mut bad = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let rel = f.strip_prefix(root()).unwrap().display().to_string();
        let n = text.lines().count();
        if n > FILE_MAX {
            bad.push(format!("{rel}: {n} lines (at most {FILE_MAX})"));
        }
        for (line, len, name) in functions(&text) {
            if len > FN_MAX {
                bad.push(format!(
                    "{rel}:{line}: fn {name} is {len} lines (at most {FN_MAX})"
                ));
            }
        }
    }
    assert!(bad.is_empty(), "split these:\n{}", bad.join("\n"));
}

#[test]
fn the_function_counter_sees_a_long_function() {
    let body = "    x();\n".repeat(200);
    let text = format!("pub fn long() {{\n{body}}}\n\nfn short() {{\n}}\n");
    let f = functions(&text);
    assert_eq!(f[0], (1, 202, "long".to_string()));
    assert_eq!(f[1], (204, 2, "short".to_string()));
}
