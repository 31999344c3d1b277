//! Metal's dispatch tables, read from candle's sources at run time. A `Table` says where a
//! `match` is (file, the anchors leading to its function, which match); looking a key up in it
//! runs the match as written: the first arm whose pattern takes the key decides. Its result is
//! a kernel name (a literal, or a constant such as `contiguous::exp::FLOAT`, resolved through
//! candle-metal-kernels' `ops!` macro or its `pub mod` constants), or an error (`bail!` text,
//! formatted with what the pattern bound; `Err(MetalError::UnexpectedDType {…})`, …). A name is
//! then checked against the `.metal` file its `call_*` function loads (`kernels.rs`).
//!
//! The table locations are the hand part (see `tables`); which dtypes each covers, the names,
//! the messages and the library files all come from parsing.

use super::kernels::Library;
use super::rust_src::Match;
use super::rust_src::{literals, render_raise, split_top, squash, Arm, Bindings, Code, Key};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

pub use super::tables::*;

/// Where a `match` is: a file of candle's published crates, the anchors leading to the item
/// holding it (searched in turn), and which of the item's matches.
#[derive(Clone, Copy, Debug)]
pub struct Table {
    pub file: &'static str,
    pub anchors: &'static [&'static str],
    pub pick: Pick,
}

#[derive(Clone, Copy, Debug)]
pub enum Pick {
    /// The n-th `match` of the item, counting from 0 (contiguous first, strided second).
    Nth(usize),
    /// The `match` on this scrutinee (whitespace squashed).
    On(&'static str),
}

/// A precondition that raises an error when it fails: the first error after `needle` in the
/// item the anchors lead to.
#[derive(Clone, Copy, Debug)]
pub struct Guard {
    pub file: &'static str,
    pub anchors: &'static [&'static str],
    pub needle: &'static str,
}

/// What one request to Metal's dispatch finds.
#[derive(Clone, Debug, PartialEq)]
pub enum Found {
    /// The Rust side asks for `name` from `file`, and the file instantiates it.
    Kernel { name: String, file: String },
    /// The Rust side asks for `name`, which `file` does not instantiate: `load_pipeline` fails.
    NotInstantiated { name: String, file: String },
    /// No kernel is asked for: the error raised instead.
    Refuses(String),
    /// Not derivable from the sources as parsed.
    Unknown(String),
}

/// An arm's result before it is taken as a kernel name.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A string literal (the first of the result's literals).
    Name(String),
    /// A path or expression without a literal (`contiguous::exp::FLOAT`, `GemmDType::F32`).
    Path(String),
    /// An error raised (`bail!`, `Err(…)`), rendered.
    Raise(String),
}

/// An item of a file, by the anchors leading to it.
type ItemKey = (String, Vec<String>);

/// candle's sources, parsed on demand, and the instantiated kernels.
pub struct Dispatch {
    pub library: Library,
    files: BTreeMap<String, Code>,
    /// The matches of each item already parsed, by (file, anchors).
    parsed: Mutex<HashMap<ItemKey, Vec<Match>>>,
}

/// The files read, as `crate/path` within cargo's registry.
const FILES: [&str; 10] = [
    "candle-core/src/metal_backend/mod.rs",
    "candle-core/src/sort.rs",
    "candle-core/src/op.rs",
    "candle-core/src/tensor.rs",
    "candle-nn/src/ops.rs",
    "candle-nn/src/rotary_emb.rs",
    "candle-metal-kernels/src/kernel.rs",
    "candle-metal-kernels/src/source.rs",
    "candle-metal-kernels/src/kernels/macros.rs",
    "candle-metal-kernels/src/kernels/mlx_gemm.rs",
];

/// The kernel modules whose `call_*` functions and constants are searched.
const KERNEL_MODULES: [&str; 9] = [
    "unary", "binary", "affine", "cast", "indexing", "reduce", "sort", "ternary", "mlx_gemm",
];

impl Dispatch {
    /// Reads the pinned candle's sources from cargo's registry and expands its Metal sources.
    pub fn load() -> Result<Dispatch, String> {
        let sources = crate::bugs::Sources::pinned().map_err(|e| e.to_string())?;
        let mut files = BTreeMap::new();
        let modules = KERNEL_MODULES.map(|m| format!("candle-metal-kernels/src/kernels/{m}.rs"));
        for f in FILES.iter().map(|f| f.to_string()).chain(modules) {
            let p = sources.path(&f)?;
            let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            files.insert(f, Code::new(text));
        }
        let library = Library::load(&sources.path("candle-metal-kernels/src/metal_src")?)?;
        Ok(Dispatch {
            library,
            files,
            parsed: Mutex::new(HashMap::new()),
        })
    }

    fn code(&self, file: &str) -> Result<&Code, String> {
        self.files
            .get(file)
            .ok_or_else(|| format!("{file} is not among the files read"))
    }

    /// The arm of `table` that takes `key`, with what it binds (the scrutinee's parts bound to
    /// the key too, so an error naming `ids.dtype()` reads the key's dtype).
    pub fn arm(&self, table: &Table, key: &[Key]) -> Result<(Arm, Bindings, usize), String> {
        let matches = self.matches(table)?;
        let m = match table.pick {
            Pick::Nth(n) => matches.get(n),
            Pick::On(s) => matches.iter().find(|m| m.scrutinee == s),
        }
        .ok_or_else(|| {
            format!(
                "{}: no match {:?} in {:?}",
                table.file, table.pick, table.anchors
            )
        })?;
        let arm = m
            .arms
            .iter()
            .find_map(|a| a.matches(key).map(|b| (a.clone(), b)))
            .ok_or_else(|| format!("no arm of {:?} takes {key:?}", table.anchors))?;
        let (arm, mut bound) = arm;
        let parts = split_top(
            m.scrutinee.trim_start_matches('(').trim_end_matches(')'),
            b',',
        );
        if parts.len() == key.len() {
            for (p, k) in parts.iter().zip(key) {
                bound.push((
                    p.trim().trim_end_matches("()").to_string(),
                    k.text().to_string(),
                ));
            }
        }
        Ok((arm, bound, m.end))
    }

    /// The `match` blocks of the item a table is in (parsed once).
    fn matches(&self, table: &Table) -> Result<Vec<Match>, String> {
        let key = (
            table.file.to_string(),
            table.anchors.iter().map(|a| a.to_string()).collect(),
        );
        if let Some(m) = self.parsed.lock().map_err(|e| e.to_string())?.get(&key) {
            return Ok(m.clone());
        }
        let code = self.code(table.file)?;
        let found = code.matches(code.body(table.anchors)?)?;
        let mut parsed = self.parsed.lock().map_err(|e| e.to_string())?;
        parsed.insert(key, found.clone());
        Ok(found)
    }

    /// The value the table gives for the key.
    pub fn value(&self, table: &Table, key: &[Key]) -> Result<Value, String> {
        let (arm, bound, _) = self.arm(table, key)?;
        let r = arm.result.trim();
        if r.contains("bail!(") || r.contains("Err(") {
            return Ok(Value::Raise(render_raise(r, &bound)));
        }
        Ok(match arm.literal() {
            Some(name) => Value::Name(name),
            None => Value::Path(r.to_string()),
        })
    }

    /// The kernel the table picks for the key: its name, checked against the library its
    /// `call_*` function (the first called after the match) loads.
    pub fn kernel(&self, table: &Table, key: &[Key]) -> Found {
        match self.kernel_inner(table, key) {
            Ok(f) => f,
            Err(e) => Found::Unknown(e),
        }
    }

    fn kernel_inner(&self, table: &Table, key: &[Key]) -> Result<Found, String> {
        let (_, _, end) = self.arm(table, key)?;
        let name = match self.value(table, key)? {
            Value::Raise(e) => return Ok(Found::Refuses(e)),
            Value::Name(n) => n,
            Value::Path(p) => self.constant(&p, table)?,
        };
        let code = self.code(table.file)?;
        let body = code.body(table.anchors)?;
        let call = called_after(code, end, body.1)?;
        Ok(self.check(&name, &self.library_of(&call)?))
    }

    /// `name` checked against `file`.
    pub fn check(&self, name: &str, file: &str) -> Found {
        let (name, file) = (name.to_string(), file.to_string());
        if self.library.has(&file, &name) {
            Found::Kernel { name, file }
        } else {
            Found::NotInstantiated { name, file }
        }
    }

    /// The error a guard raises, rendered.
    pub fn guard(&self, g: &Guard) -> Found {
        let text = self
            .code(g.file)
            .and_then(|c| c.raise_after(c.body(g.anchors)?, g.needle));
        match text {
            Ok(t) => Found::Refuses(render_raise(&t, &Vec::new())),
            Err(e) => Found::Unknown(e),
        }
    }

    /// The `.metal` file a `call_*` function loads its kernels from: its `Source::X`, mapped by
    /// `Kernels::get_library_source` to a constant that `source.rs` includes from a file.
    pub fn library_of(&self, call: &str) -> Result<String, String> {
        let (code, body) = KERNEL_MODULES
            .iter()
            .find_map(|m| {
                let c = self
                    .files
                    .get(&format!("candle-metal-kernels/src/kernels/{m}.rs"))?;
                let at = [format!("pub fn {call}("), format!("pub fn {call}<")]
                    .iter()
                    .find_map(|a| c.find(a, 0))?;
                let open = c.find("{", at)?;
                Some((c, (open, c.closing(open).ok()?)))
            })
            .ok_or_else(|| format!("no `pub fn {call}` in candle-metal-kernels"))?;
        let s = code
            .find("Source::", body.0)
            .filter(|&s| s < body.1)
            .ok_or_else(|| format!("{call} loads no Source"))?;
        let variant: String = ident_at(&code.text, s + "Source::".len());
        let constant = match self.value(&LIBRARY_SOURCE, &[Key::Word(variant.clone())])? {
            Value::Path(p) => p,
            v => return Err(format!("Source::{variant} maps to {v:?}")),
        };
        let src = self.code("candle-metal-kernels/src/source.rs")?;
        let at = src
            .find(&format!("pub const {constant}:"), 0)
            .ok_or_else(|| format!("no constant {constant} in source.rs"))?;
        let line = &src.text[at..src.find(";", at).unwrap_or(src.text.len())];
        let path = literals(line).pop().ok_or("no include_str! path")?;
        Ok(path.rsplit('/').next().unwrap_or(&path).to_string())
    }

    /// A kernel-name constant's value: `contiguous::exp::FLOAT` through the `ops!` macro
    /// (`concat!(stringify!($name), "_f32")`, for a name the invocation lists), otherwise a
    /// `pub mod NAME { pub const CONST … = "…" }` of a kernel module.
    pub fn constant(&self, path: &str, table: &Table) -> Result<String, String> {
        let segs: Vec<&str> = path
            .split("::")
            .map(str::trim)
            .filter(|s| *s != "candle_metal_kernels")
            .collect();
        let [.., module, name, konst] = segs.as_slice() else {
            let [name, konst] = segs.as_slice() else {
                return Err(format!("unexpected constant path {path}"));
            };
            return self.module_constant(name, konst);
        };
        if !matches!(*module, "contiguous" | "strided") {
            return self.module_constant(name, konst);
        }
        let family = self.ops_module(&segs, module, table)?;
        let macros = self.code("candle-metal-kernels/src/kernels/macros.rs")?;
        let block = macros.body(&[&format!("pub mod {module}")])?;
        if *name == "copy" {
            let at = macros
                .find("pub mod copy", block.0)
                .filter(|&a| a < block.1);
            return const_literal(macros, at.ok_or("no copy module")?, konst);
        }
        let listed = self.ops_list(&family)?;
        if !listed.iter().any(|n| n == name) {
            return Err(format!("`{name}` is not in {family}.rs's ops! list"));
        }
        let at = macros.find(&format!("pub const {konst}:"), block.0);
        let stmt_end = at.and_then(|a| macros.find(";", a)).ok_or("no template")?;
        let stmt = &macros.text[at.unwrap_or(0)..stmt_end];
        if !stmt.contains("stringify!($name)") {
            return Err(format!(
                "ops! template for {konst} is not `$name` + suffix: {stmt}"
            ));
        }
        Ok(format!("{name}{}", literals(stmt).concat()))
    }

    /// Which kernel module's `ops!` a `contiguous::`/`strided::` path refers to: named in the
    /// path (`unary::strided::copy`) or by the `use candle_metal_kernels::X::contiguous` in the
    /// item holding the table.
    fn ops_module(&self, segs: &[&str], module: &str, table: &Table) -> Result<String, String> {
        if let Some(i) = segs.iter().position(|s| *s == module).filter(|&i| i > 0) {
            return Ok(segs[i - 1].to_string());
        }
        let code = self.code(table.file)?;
        let body = code.body(table.anchors)?;
        let text = code.masked(body.0, body.1);
        let needle = "use candle_metal_kernels::";
        let at = text
            .find(&format!("{needle}unary::{module}"))
            .or_else(|| text.find(&format!("{needle}binary::{module}")))
            .ok_or_else(|| format!("no `use …::{module}` in {:?}", table.anchors))?;
        Ok(ident_at(text, at + needle.len()))
    }

    /// The names an `ops!(…)` invocation lists in a kernel module.
    fn ops_list(&self, family: &str) -> Result<Vec<String>, String> {
        let c = self.code(&format!("candle-metal-kernels/src/kernels/{family}.rs"))?;
        let at = c
            .find("ops!(", 0)
            .ok_or_else(|| format!("no ops! in {family}.rs"))?;
        let close = c.closing(at + 4)?;
        Ok(split_top(&c.text[at + 5..close], b',')
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect())
    }

    fn module_constant(&self, module: &str, konst: &str) -> Result<String, String> {
        for m in KERNEL_MODULES {
            let c = self.code(&format!("candle-metal-kernels/src/kernels/{m}.rs"))?;
            if let Some(at) = c.find(&format!("pub mod {module} {{"), 0) {
                return const_literal(c, at, konst);
            }
        }
        Err(format!("no `pub mod {module}` of kernel names"))
    }

    /// A tensor method's `UnaryOpT::KERNEL` (`exp` → `Exp` → `uexp`): tensor.rs's
    /// `unary_op!(exp, Exp)`, then op.rs's `impl UnaryOpT for Exp { const KERNEL … }` or its
    /// `unary_op!(Exp, "exp", …)` with the macro's `concat!("u", $name)`.
    pub fn unary_kernel(&self, method: &str) -> Result<String, String> {
        let tensor = self.code("candle-core/src/tensor.rs")?;
        let at = tensor
            .find(&format!("unary_op!({method},"), 0)
            .ok_or_else(|| format!("no unary_op!({method}, …) in tensor.rs"))?;
        let strukt = ident_at(&tensor.text, at + format!("unary_op!({method},").len());
        let op = self.code("candle-core/src/op.rs")?;
        if let Some(at) = op.find(&format!("impl UnaryOpT for {strukt} {{"), 0) {
            let k = op.find("const KERNEL", at).ok_or("no KERNEL")?;
            let stmt = &op.text[k..op.find(";", k).unwrap_or(k)];
            return literals(stmt)
                .pop()
                .ok_or_else(|| "KERNEL is not a literal".into());
        }
        let inv = op
            .find(&format!("unary_op!({strukt},"), 0)
            .ok_or_else(|| format!("no UnaryOpT for {strukt}"))?;
        let name = literals(&op.text[inv..op.find(")", inv).unwrap_or(inv)])
            .pop()
            .ok_or("unary_op! without a name")?;
        Ok(format!(
            "{}{name}",
            self.macro_prefix("macro_rules! unary_op")?
        ))
    }

    /// A binary op's `BinaryOpT::KERNEL` (`Mul` → `bmul`): op.rs's `bin_op!(Mul, mul, …)` with
    /// the macro's `concat!("b", stringify!($name))`.
    pub fn binary_kernel(&self, strukt: &str) -> Result<String, String> {
        let op = self.code("candle-core/src/op.rs")?;
        let at = op
            .find(&format!("bin_op!({strukt},"), 0)
            .ok_or_else(|| format!("no bin_op!({strukt}, …)"))?;
        let name = split_top(&op.text[at + 8..op.closing(at + 7)?], b',')
            .get(1)
            .map(|s| s.trim().to_string())
            .ok_or("bin_op! without a name")?;
        Ok(format!(
            "{}{name}",
            self.macro_prefix("macro_rules! bin_op")?
        ))
    }

    /// The literal prefix of a macro's `const KERNEL: &'static str = concat!("u", …)`.
    fn macro_prefix(&self, macro_head: &str) -> Result<String, String> {
        let op = self.code("candle-core/src/op.rs")?;
        let m = op
            .find(macro_head, 0)
            .ok_or_else(|| format!("no {macro_head}"))?;
        let k = op.find("const KERNEL", m).ok_or("no KERNEL in macro")?;
        let stmt = &op.text[k..op.find(";", k).unwrap_or(k)];
        literals(stmt)
            .first()
            .cloned()
            .ok_or_else(|| "KERNEL without a literal prefix".into())
    }

    /// The string literals of the statement starting at `anchor` within the item.
    pub fn literals_after(&self, table: &Table, anchor: &str) -> Result<Vec<String>, String> {
        let code = self.code(table.file)?;
        let body = code.body(table.anchors)?;
        let at = code
            .find(anchor, body.0)
            .ok_or_else(|| format!("no `{anchor}`"))?;
        let end = code.find(";", at).ok_or("unterminated statement")?;
        Ok(literals(&code.text[at..end]))
    }

    /// Formats a name the way a `format!` in the sources does: the literal of the first
    /// `format!(` after `anchor` within the item, its holes filled in order from `args`.
    pub fn format_name(
        &self,
        table: &Table,
        anchor: &str,
        args: &[&str],
    ) -> Result<String, String> {
        let code = self.code(table.file)?;
        let body = code.body(table.anchors)?;
        let at = code
            .find(anchor, body.0)
            .ok_or_else(|| format!("no `{anchor}`"))?;
        let f = code.find("format!(", at).ok_or("no format!")?;
        let fmt = literals(&code.text[f..code.closing(f + 7)?])
            .first()
            .cloned()
            .ok_or("format! without a literal")?;
        fill_holes(&fmt, args)
    }
}

/// `fmt` with each `{…}` hole replaced by the next argument.
fn fill_holes(fmt: &str, args: &[&str]) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = fmt;
    let mut args = args.iter();
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').ok_or("unclosed hole")? + open;
        out.push_str(
            args.next()
                .ok_or_else(|| format!("too few arguments for {fmt}"))?,
        );
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The first `call_*` function called in `from..to` (the one a match's name is passed to).
fn called_after(code: &Code, from: usize, to: usize) -> Result<String, String> {
    let text = code.masked(from, to);
    let at = text
        .match_indices("call_")
        .find(|(i, _)| *i == 0 || !text.as_bytes()[i - 1].is_ascii_alphanumeric())
        .map(|(i, _)| i)
        .ok_or("no call_* after the match")?;
    Ok(ident_at(text, at))
}

/// The literal a `pub const KONST` after `at` is defined with.
fn const_literal(code: &Code, at: usize, konst: &str) -> Result<String, String> {
    let c = code
        .find(&format!("pub const {konst}:"), at)
        .ok_or_else(|| format!("no const {konst}"))?;
    let stmt = &code.text[c..code.find(";", c).unwrap_or(c)];
    literals(stmt)
        .pop()
        .ok_or_else(|| format!("{} is not a literal", squash(stmt)))
}

/// The identifier starting at byte `at`.
pub fn ident_at(text: &str, at: usize) -> String {
    text[at..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}
