//! `repro coverage`: which parts of candle the project checks and which it does not
//! (`reports/COVERAGE.md`).
//!
//! The items come from candle's own sources at the version the workspace pins (found with
//! `cargo metadata`), not from a hand list: every `pub fn` of the `impl Tensor` blocks of
//! candle-core's `src/*.rs` (methods written by macros included), and candle-nn's public
//! functions of `ops.rs`, `rotary_emb.rs`, `loss.rs`, the `Activation` variants and the public
//! structs implementing `Module` in the files read. What covers each item is derived from the
//! registries: the sweep's `OPS` table (the candle calls in each op's `call` and `code`) and the
//! suite's cases (`cases::all()`, the candle calls in each case file's code).
//!
//! The parser is a small tokenizer plus a brace-aware item walker (no `syn`): it only has to
//! find items, visibility, `#[cfg(test)]`, `impl` headers and `macro_rules!` expansions that
//! name a method, and it reports what it could not expand instead of guessing.

use crate::error::Error;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The page's file name inside the report folder.
pub const PAGE: &str = "COVERAGE.md";

/// candle-nn files whose public free functions are items.
const NN_FN_FILES: &[&str] = &["ops.rs", "rotary_emb.rs", "loss.rs"];
/// candle-nn files whose public structs implementing `Module` are items (and `Activation`'s
/// variants, from activation.rs).
const NN_MODULE_FILES: &[&str] = &[
    "ops.rs",
    "activation.rs",
    "layer_norm.rs",
    "linear.rs",
    "embedding.rs",
];

/// `Tensor` methods left out of the table: they compute nothing on a backend (or only read a
/// result back), so "covered" would say nothing. Listed on the page with the reason.
const SKIPPED: &[(&str, &str)] = &[
    ("shape", "metadata accessor: no kernel runs"),
    ("dims", "metadata accessor: no kernel runs"),
    ("dtype", "metadata accessor: no kernel runs"),
    ("device", "metadata accessor: no kernel runs"),
    ("layout", "metadata accessor: no kernel runs"),
    ("id", "metadata accessor: no kernel runs"),
    ("is_contiguous", "metadata accessor: no kernel runs"),
    ("rank", "metadata accessor: no kernel runs"),
    ("elem_count", "metadata accessor: no kernel runs"),
    ("stride", "metadata accessor: no kernel runs"),
    (
        "storage*",
        "raw storage access (the backend's buffer itself)",
    ),
    ("op", "autograd bookkeeping: no computation"),
    ("is_variable", "autograd bookkeeping: no computation"),
    ("track_op", "autograd bookkeeping: no computation"),
    ("dims0..dims5", "shape destructuring: no kernel runs"),
    (
        "to_vec0..to_vec3",
        "read-back: every check reads its results this way",
    ),
    (
        "to_scalar",
        "read-back: every check reads its results this way",
    ),
];

fn skip_reason(name: &str) -> Option<&'static str> {
    let pick = |key: &str| SKIPPED.iter().find(|(k, _)| *k == key).map(|(_, r)| *r);
    let numbered = |prefix: &str, max: u32| {
        name.strip_prefix(prefix)
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n <= max)
    };
    if name.starts_with("storage") {
        pick("storage*")
    } else if numbered("dims", 5) {
        pick("dims0..dims5")
    } else if numbered("to_vec", 3) {
        pick("to_vec0..to_vec3")
    } else {
        pick(name)
    }
}

/// Method calls a case file makes that the text scan would take for a candle `Tensor` method
/// but that are calls on something else. Each must still occur in its file (a test checks), so
/// an entry cannot outlive the call it explains.
pub const NOT_TENSOR_CALLS: &[(&str, &str, &str)] = &[
    (
        "scatter_add_backward",
        "get",
        "`grads.get(wrt)` is GradStore::get, not Tensor::get",
    ),
    (
        "scatter_add_u32",
        "dim",
        "`layout.dim()` is the case's own Layout::dim, not Tensor::dim",
    ),
];

// ---------------------------------------------------------------------------------------------
// Tokenizer: identifiers (`$name` in macro bodies), punctuation, literals and lifetimes; comments
// and whitespace dropped. Enough Rust to walk items; string contents never look like code.

#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    Ident(String),
    Punct(char),
    Lit,
    Lifetime,
}

impl Tok {
    fn is(&self, c: char) -> bool {
        *self == Tok::Punct(c)
    }

    fn ident(&self) -> Option<&str> {
        match self {
            Tok::Ident(s) => Some(s),
            _ => None,
        }
    }

    fn is_ident(&self, s: &str) -> bool {
        self.ident() == Some(s)
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

pub fn tokenize(src: &str) -> Vec<Tok> {
    let s: Vec<char> = src.chars().collect();
    let n = s.len();
    let mut out = Vec::new();
    let mut i = 0;
    // Skips a quoted string starting at the opening `"` at `i`; `hashes` for raw strings.
    let string_end = |mut i: usize, raw: bool, hashes: usize| -> usize {
        i += 1;
        while i < n {
            if !raw && s[i] == '\\' {
                i += 2;
                continue;
            }
            if s[i] == '"' && (i + 1..=i + hashes).all(|j| j < n && s[j] == '#') {
                return i + 1 + hashes;
            }
            i += 1;
        }
        n
    };
    while i < n {
        let c = s[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && s.get(i + 1) == Some(&'/') {
            while i < n && s[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && s.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < n {
                if s[i] == '/' && s.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if s[i] == '*' && s.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == '"' {
            i = string_end(i, false, 0);
            out.push(Tok::Lit);
        } else if (c == 'r' || c == 'b') && is_raw_or_byte_string(&s, i) {
            // r"…", r#"…"#, b"…", br"…", br#"…"#, b'…'
            let mut j = i + 1;
            let raw = c == 'r' || s.get(j) == Some(&'r');
            if c == 'b' && s.get(j) == Some(&'r') {
                j += 1;
            }
            if c == 'b' && s.get(j) == Some(&'\'') {
                i = char_end(&s, j);
                out.push(Tok::Lit);
                continue;
            }
            let mut hashes = 0;
            while s.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            i = string_end(j, raw, hashes);
            out.push(Tok::Lit);
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{1F600}') or a lifetime ('a, 'static).
            if s.get(i + 1) == Some(&'\\') || s.get(i + 2) == Some(&'\'') {
                i = char_end(&s, i);
                out.push(Tok::Lit);
            } else {
                i += 1;
                while i < n && is_ident_char(s[i]) {
                    i += 1;
                }
                out.push(Tok::Lifetime);
            }
        } else if c.is_ascii_digit() {
            while i < n && (is_ident_char(s[i]) || (s[i] == '.' && s.get(i + 1) != Some(&'.'))) {
                // `1.5` is one literal; `0..n` and `x.0.max()` are not swallowed past the dot
                // when a letter or a second dot follows.
                if s[i] == '.' && !s.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
                    break;
                }
                i += 1;
            }
            out.push(Tok::Lit);
        } else if is_ident_start(c)
            || (c == '$' && s.get(i + 1).is_some_and(|&d| is_ident_start(d)))
        {
            let start = i;
            i += 1;
            if c == 'r'
                && s.get(i) == Some(&'#')
                && s.get(i + 1).is_some_and(|&d| is_ident_start(d))
            {
                i += 1; // r#ident
            }
            while i < n && is_ident_char(s[i]) {
                i += 1;
            }
            let word: String = s[start..i].iter().collect();
            out.push(Tok::Ident(word.trim_start_matches("r#").to_string()));
        } else {
            out.push(Tok::Punct(c));
            i += 1;
        }
    }
    out
}

fn is_raw_or_byte_string(s: &[char], i: usize) -> bool {
    // Not when the letter ends an identifier (`for"` cannot occur, but `bar"` would be `bar` `"`).
    if i > 0 && is_ident_char(s[i - 1]) {
        return false;
    }
    let mut j = i + 1;
    if s[i] == 'b' {
        if s.get(j) == Some(&'\'') || s.get(j) == Some(&'"') {
            return true;
        }
        if s.get(j) != Some(&'r') {
            return false;
        }
        j += 1;
    }
    while s.get(j) == Some(&'#') {
        j += 1;
    }
    s.get(j) == Some(&'"')
}

/// The end (one past the closing quote) of a char literal opening at `i`.
fn char_end(s: &[char], i: usize) -> usize {
    let mut j = i + 1;
    if s.get(j) == Some(&'\\') {
        j += 2;
    } else {
        j += 1;
    }
    while j < s.len() && s[j] != '\'' {
        j += 1;
    }
    j + 1
}

// ---------------------------------------------------------------------------------------------
// Item walker.

/// The index of the token closing the group that opens at `open` (`(`, `[` or `{`).
fn close_of(t: &[Tok], open: usize) -> usize {
    let mut depth = 0i32;
    for (j, tok) in t.iter().enumerate().skip(open) {
        match tok {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => {
                depth -= 1;
                if depth == 0 {
                    return j;
                }
            }
            _ => {}
        }
    }
    t.len().saturating_sub(1)
}

/// The first token at `from` or later, outside any group opened after `from`, that `stop`
/// accepts; groups are jumped over whole.
fn find_top(t: &[Tok], from: usize, stop: impl Fn(&Tok) -> bool) -> Option<usize> {
    let mut j = from;
    while j < t.len() {
        if stop(&t[j]) {
            return Some(j);
        }
        if matches!(t[j], Tok::Punct('(' | '[' | '{')) {
            j = close_of(t, j);
        }
        j += 1;
    }
    None
}

#[derive(Debug, Default)]
pub struct Items {
    pub fns: Vec<FnItem>,
    pub impls: Vec<ImplItem>,
    pub macro_calls: Vec<MacroCall>,
    pub macro_defs: Vec<MacroDef>,
    pub enums: Vec<EnumItem>,
    pub structs: Vec<(String, bool)>,
    /// Names of `fn`s left out because they are `#[cfg(test)]` (or inside a test module).
    pub test_only: Vec<String>,
}

#[derive(Debug)]
pub struct FnItem {
    pub name: String,
    pub public: bool,
    /// Token range, body included.
    pub span: (usize, usize),
}

#[derive(Debug)]
pub struct ImplItem {
    pub trait_name: Option<String>,
    pub self_ty: String,
    pub body: Items,
}

#[derive(Debug)]
pub struct MacroCall {
    pub name: String,
    /// The arguments split at top-level commas.
    pub args: Vec<Vec<Tok>>,
}

#[derive(Debug)]
pub struct MacroDef {
    pub name: String,
    pub rules: Vec<MacroRule>,
}

/// What one `macro_rules!` arm writes that this page cares about: `pub fn`s (invoked inside an
/// `impl Tensor`) and `pub fn`s of an `impl Tensor` it writes itself (invoked at file level).
#[derive(Debug)]
pub struct MacroRule {
    /// The arm's `$param:frag` names in order; `None` once a repetition makes positions unknown.
    pub params: Vec<Option<String>>,
    pub fns: Vec<String>,
    pub tensor_fns: Vec<String>,
}

#[derive(Debug)]
pub struct EnumItem {
    pub name: String,
    pub public: bool,
    pub variants: Vec<String>,
}

fn is_cfg_test(attr: &[Tok]) -> bool {
    attr.first().is_some_and(|t| t.is_ident("cfg"))
        && attr.iter().any(|t| t.is_ident("test"))
        && !attr.iter().any(|t| t.is_ident("not"))
}

/// The last identifier of a type path, outside generic arguments: `crate::Tensor` → Tensor,
/// `std::ops::Add<B>` → Add, `&'a Foo` → Foo.
fn last_ident(t: &[Tok]) -> Option<String> {
    let mut angle = 0i32;
    let mut last = None;
    for (j, tok) in t.iter().enumerate() {
        match tok {
            Tok::Punct('<') => angle += 1,
            Tok::Punct('>') if j == 0 || !t[j - 1].is('-') => angle -= 1,
            Tok::Ident(s) if angle == 0 && s != "mut" && s != "dyn" => last = Some(s.clone()),
            _ => {}
        }
    }
    last
}

/// Splits an `impl` header (the tokens between `impl` and `{`) into trait and self type.
fn impl_header(h: &[Tok]) -> (Option<String>, String) {
    let mut start = 0;
    if h.first().is_some_and(|t| t.is('<')) {
        let mut angle = 0i32;
        for (j, tok) in h.iter().enumerate() {
            match tok {
                Tok::Punct('<') => angle += 1,
                Tok::Punct('>') if !h[j - 1].is('-') => angle -= 1,
                _ => {}
            }
            if angle == 0 {
                start = j + 1;
                break;
            }
        }
    }
    let h = &h[start..];
    let end = h
        .iter()
        .position(|t| t.is_ident("where"))
        .unwrap_or(h.len());
    let h = &h[..end];
    let mut angle = 0i32;
    let mut for_at = None;
    for (j, tok) in h.iter().enumerate() {
        match tok {
            Tok::Punct('<') => angle += 1,
            Tok::Punct('>') if j == 0 || !h[j - 1].is('-') => angle -= 1,
            t if angle == 0 && t.is_ident("for") => {
                for_at = Some(j);
                break;
            }
            _ => {}
        }
    }
    match for_at {
        Some(f) => (
            last_ident(&h[..f]),
            last_ident(&h[f + 1..]).unwrap_or_default(),
        ),
        None => (None, last_ident(h).unwrap_or_default()),
    }
}

fn split_commas(t: &[Tok]) -> Vec<Vec<Tok>> {
    let mut out = vec![Vec::new()];
    let mut j = 0;
    while j < t.len() {
        if t[j].is(',') {
            out.push(Vec::new());
        } else if matches!(t[j], Tok::Punct('(' | '[' | '{')) {
            let e = close_of(t, j);
            out.last_mut().unwrap().extend_from_slice(&t[j..=e]);
            j = e;
        } else {
            out.last_mut().unwrap().push(t[j].clone());
        }
        j += 1;
    }
    if out.last().is_some_and(|a| a.is_empty()) {
        out.pop();
    }
    out
}

fn macro_rules_def(name: String, t: &[Tok]) -> MacroDef {
    let mut rules = Vec::new();
    let mut j = 0;
    while j < t.len() {
        if !matches!(t[j], Tok::Punct('(' | '[' | '{')) {
            j += 1;
            continue;
        }
        let pat_end = close_of(t, j);
        let mut params = Vec::new();
        let mut repeated = false;
        let mut k = j + 1;
        while k < pat_end {
            if t[k].is('$') && t.get(k + 1).is_some_and(|x| x.is('(')) {
                repeated = true;
            } else if let Some(p) = t[k].ident().filter(|p| p.starts_with('$')) {
                if t.get(k + 1).is_some_and(|x| x.is(':')) {
                    params.push((!repeated).then(|| p.to_string()));
                }
            }
            k += 1;
        }
        // `=>` then the body group.
        let Some(b) = (pat_end + 1..t.len()).find(|&x| matches!(t[x], Tok::Punct('(' | '[' | '{')))
        else {
            break;
        };
        let b_end = close_of(t, b);
        let body = parse_items(&t[b + 1..b_end]);
        let fns = body
            .fns
            .iter()
            .filter(|f| f.public)
            .map(|f| f.name.clone())
            .collect();
        let tensor_fns = body
            .impls
            .iter()
            .filter(|i| i.trait_name.is_none() && i.self_ty == "Tensor")
            .flat_map(|i| i.body.fns.iter().filter(|f| f.public))
            .map(|f| f.name.clone())
            .collect();
        rules.push(MacroRule {
            params,
            fns,
            tensor_fns,
        });
        j = b_end + 1;
    }
    MacroDef { name, rules }
}

/// Walks the items of a file (or of an `impl`/macro body): functions, impls, enums, structs,
/// macro definitions and invocations; `#[cfg(test)]` items are left out (their fn names kept
/// in `test_only`), nested modules are not entered.
pub fn parse_items(t: &[Tok]) -> Items {
    let mut items = Items::default();
    let mut i = 0;
    let mut test_only = false;
    while i < t.len() {
        // Attributes.
        if t[i].is('#') {
            let mut j = i + 1;
            let inner = t.get(j).is_some_and(|x| x.is('!'));
            if inner {
                j += 1;
            }
            if t.get(j).is_some_and(|x| x.is('[')) {
                let e = close_of(t, j);
                if !inner && is_cfg_test(&t[j + 1..e]) {
                    test_only = true;
                }
                i = e + 1;
            } else {
                i += 1;
            }
            continue;
        }
        if t[i].is(';') {
            i += 1;
            continue;
        }
        let start = i;
        let mut k = i;
        let mut public = false;
        if t[k].is_ident("pub") {
            k += 1;
            if t.get(k).is_some_and(|x| x.is('(')) {
                k = close_of(t, k) + 1; // pub(crate), pub(super): not public
            } else {
                public = true;
            }
        }
        loop {
            match t.get(k) {
                Some(Tok::Ident(q))
                    if (q == "const" && t.get(k + 1).is_some_and(|x| x.is_ident("fn")))
                        || q == "async"
                        || q == "unsafe"
                        || q == "default"
                        || q == "extern" =>
                {
                    k += 1
                }
                Some(Tok::Lit) if k > start && t[k - 1].is_ident("extern") => k += 1,
                _ => break,
            }
        }
        let kw = t.get(k).and_then(|x| x.ident()).unwrap_or("");
        let end = match kw {
            "fn" => {
                let name = t
                    .get(k + 1)
                    .and_then(|x| x.ident())
                    .unwrap_or("")
                    .to_string();
                let e = find_top(t, k + 1, |x| x.is('{') || x.is(';')).unwrap_or(t.len() - 1);
                let e = if t[e].is('{') { close_of(t, e) } else { e };
                if test_only {
                    items.test_only.push(name);
                } else {
                    items.fns.push(FnItem {
                        name,
                        public,
                        span: (start, e),
                    });
                }
                e
            }
            "impl" => {
                let b = find_top(t, k + 1, |x| x.is('{')).unwrap_or(t.len() - 1);
                let e = close_of(t, b);
                let (trait_name, self_ty) = impl_header(&t[k + 1..b]);
                let body = parse_items(&t[b + 1..e]);
                if test_only {
                    items
                        .test_only
                        .extend(body.fns.iter().map(|f| f.name.clone()));
                } else {
                    items.impls.push(ImplItem {
                        trait_name,
                        self_ty,
                        body,
                    });
                }
                e
            }
            "macro_rules" => {
                // macro_rules! name { … }
                let name = t
                    .get(k + 2)
                    .and_then(|x| x.ident())
                    .unwrap_or("")
                    .to_string();
                let b = find_top(t, k + 2, |x| matches!(x, Tok::Punct('(' | '[' | '{')))
                    .unwrap_or(t.len() - 1);
                let e = close_of(t, b);
                if !test_only {
                    items.macro_defs.push(macro_rules_def(name, &t[b + 1..e]));
                }
                e
            }
            "enum" => {
                let name = t
                    .get(k + 1)
                    .and_then(|x| x.ident())
                    .unwrap_or("")
                    .to_string();
                let b = find_top(t, k + 1, |x| x.is('{')).unwrap_or(t.len() - 1);
                let e = close_of(t, b);
                let variants = split_commas(&t[b + 1..e])
                    .iter()
                    .filter_map(|v| {
                        // Skip the variant's attributes.
                        let mut j = 0;
                        while j < v.len() && v[j].is('#') {
                            j = close_of(v, j + 1) + 1;
                        }
                        v.get(j).and_then(|x| x.ident()).map(String::from)
                    })
                    .collect();
                if !test_only {
                    items.enums.push(EnumItem {
                        name,
                        public,
                        variants,
                    });
                }
                e
            }
            "struct" | "union" => {
                let name = t
                    .get(k + 1)
                    .and_then(|x| x.ident())
                    .unwrap_or("")
                    .to_string();
                let e = find_top(t, k + 1, |x| x.is('{') || x.is(';')).unwrap_or(t.len() - 1);
                let e = if t[e].is('{') { close_of(t, e) } else { e };
                if !test_only {
                    items.structs.push((name, public));
                }
                e
            }
            "mod" | "trait" => {
                let e = find_top(t, k + 1, |x| x.is('{') || x.is(';')).unwrap_or(t.len() - 1);
                if t[e].is('{') {
                    close_of(t, e)
                } else {
                    e
                }
            }
            _ => {
                // A macro invocation `path::name!(…)`, or anything else up to its `;`.
                let bang = (k..t.len())
                    .take_while(|&j| t[j].ident().is_some() || t[j].is(':') || t[j].is('!'))
                    .find(|&j| t[j].is('!'));
                match bang {
                    Some(bg)
                        if t.get(bg + 1)
                            .is_some_and(|x| matches!(x, Tok::Punct('(' | '[' | '{'))) =>
                    {
                        let e = close_of(t, bg + 1);
                        if !test_only {
                            items.macro_calls.push(MacroCall {
                                name: t[bg - 1].ident().unwrap_or("").to_string(),
                                args: split_commas(&t[bg + 2..e]),
                            });
                        }
                        e
                    }
                    _ => find_top(t, k, |x| x.is(';')).unwrap_or(t.len() - 1),
                }
            }
        };
        test_only = false;
        i = end.max(start) + 1;
    }
    items
}

// ---------------------------------------------------------------------------------------------
// The items of candle.

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Item {
    /// `index_select` for a Tensor method; `ops::softmax`, `Activation::Gelu`,
    /// `linear::Linear` for candle-nn.
    pub key: String,
    /// The file it is defined in, relative to the crate's src/.
    pub file: String,
}

/// What the candle-core parse found: the methods, the skipped ones with their file, the
/// `#[cfg(test)]` fns left out, and macro invocations inside `impl Tensor` that no macro of the
/// same file expands to a method.
#[derive(Debug, Default)]
pub struct CoreItems {
    pub items: Vec<Item>,
    pub skipped: Vec<Item>,
    pub test_only: usize,
    pub unexpanded: Vec<String>,
}

/// The `Tensor` methods one file defines: `pub fn`s of inherent `impl Tensor` blocks, and the
/// methods written by this file's `macro_rules!`, invoked inside such a block or at file level.
pub fn tensor_methods(src: &str) -> (Vec<String>, usize, Vec<String>) {
    let items = parse_items(&tokenize(src));
    let mut names = Vec::new();
    let mut unexpanded = Vec::new();
    let mut test_only = 0;
    // A macro arm's method name: a literal, or the argument in the `$param`'s position.
    let expand = |call: &MacroCall, in_impl: bool| -> Option<Vec<String>> {
        let def = items
            .macro_defs
            .iter()
            .rev()
            .find(|d| d.name == call.name)?;
        let mut out = Vec::new();
        for rule in &def.rules {
            let written = if in_impl { &rule.fns } else { &rule.tensor_fns };
            for f in written {
                if let Some(p) = f.strip_prefix('$') {
                    let pos = rule
                        .params
                        .iter()
                        .position(|q| q.as_deref() == Some(&format!("${p}")));
                    let arg =
                        pos.and_then(|pos| call.args.get(pos))
                            .and_then(|a| match a.as_slice() {
                                [Tok::Ident(name)] => Some(name.clone()),
                                _ => None,
                            });
                    out.push(arg?);
                } else {
                    out.push(f.clone());
                }
            }
            // The first arm that writes methods is the one that matches in candle's macros;
            // arms are not matched against the arguments.
            if !written.is_empty() {
                break;
            }
        }
        Some(out)
    };
    for imp in &items.impls {
        if imp.trait_name.is_some() || imp.self_ty != "Tensor" {
            continue;
        }
        test_only += imp.body.test_only.len();
        names.extend(
            imp.body
                .fns
                .iter()
                .filter(|f| f.public)
                .map(|f| f.name.clone()),
        );
        for call in &imp.body.macro_calls {
            match expand(call, true) {
                Some(v) if !v.is_empty() => names.extend(v),
                _ => unexpanded.push(format!("{}!", call.name)),
            }
        }
    }
    for call in &items.macro_calls {
        if let Some(v) = expand(call, false) {
            names.extend(v);
        }
    }
    (names, test_only, unexpanded)
}

fn read(p: &Path) -> Result<String, Error> {
    std::fs::read_to_string(p).map_err(|e| Error::unreadable(p, e))
}

/// Every `Tensor` method of candle-core's `src/*.rs`, the skipped accessors apart.
pub fn core_items(src_dir: &Path) -> Result<CoreItems, Error> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(src_dir)
        .map_err(|e| Error::unreadable(src_dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    let mut out = CoreItems::default();
    let mut seen = BTreeSet::new();
    for p in &files {
        let file = p.file_name().unwrap().to_string_lossy().into_owned();
        let (names, test_only, unexpanded) = tensor_methods(&read(p)?);
        out.test_only += test_only;
        out.unexpanded
            .extend(unexpanded.into_iter().map(|m| format!("{m} in {file}")));
        for name in names {
            if !seen.insert(name.clone()) {
                continue; // the same method under another cfg
            }
            let item = Item {
                key: name.clone(),
                file: file.clone(),
            };
            if skip_reason(&name).is_some() {
                out.skipped.push(item);
            } else {
                out.items.push(item);
            }
        }
    }
    if out.items.is_empty() {
        return Err(Error::internal(format!(
            "found no `impl Tensor` methods in {}: has candle's layout changed?",
            src_dir.display()
        )));
    }
    Ok(out)
}

/// candle-nn's items: the public free fns of `NN_FN_FILES` (as `<module>::<fn>`), the
/// `Activation` variants and the public structs implementing `Module` in `NN_MODULE_FILES`.
pub fn nn_items(src_dir: &Path) -> Result<Vec<Item>, Error> {
    let mut out = Vec::new();
    let files: BTreeSet<&str> = NN_FN_FILES.iter().chain(NN_MODULE_FILES).copied().collect();
    for file in files {
        let p = src_dir.join(file);
        let items = parse_items(&tokenize(&read(&p)?));
        let module = file.trim_end_matches(".rs");
        let item = |key: String| Item {
            key,
            file: file.to_string(),
        };
        if NN_FN_FILES.contains(&file) {
            out.extend(
                items
                    .fns
                    .iter()
                    .filter(|f| f.public)
                    .map(|f| item(format!("{module}::{}", f.name))),
            );
        }
        if NN_MODULE_FILES.contains(&file) {
            for e in items
                .enums
                .iter()
                .filter(|e| e.public && e.name == "Activation")
            {
                out.extend(e.variants.iter().map(|v| item(format!("Activation::{v}"))));
            }
            let modules: BTreeSet<&str> = items
                .impls
                .iter()
                .filter(|i| i.trait_name.as_deref() == Some("Module"))
                .map(|i| i.self_ty.as_str())
                .collect();
            out.extend(
                items
                    .structs
                    .iter()
                    .filter(|(name, public)| *public && modules.contains(name.as_str()))
                    .map(|(name, _)| item(format!("{module}::{name}"))),
            );
        }
    }
    if out.is_empty() {
        return Err(Error::internal(format!(
            "found no candle-nn items in {}",
            src_dir.display()
        )));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// What the project calls.

/// A candle item named by a call in the project's code.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ref {
    /// `x.name(…)` or `Tensor::name(…)`.
    Method(String),
    /// `candle_nn::a::b(…)`, `candle_nn::Name`, `Activation::Variant`: the path after
    /// `candle_nn::` (or `Activation::Variant`).
    Nn(String),
}

/// The candle calls in some code (tokens): method calls, `Tensor::` associated calls,
/// `candle_nn::` paths and `Activation::` variants.
pub fn refs(t: &[Tok]) -> BTreeSet<Ref> {
    let mut out = BTreeSet::new();
    let path_sep =
        |j: usize| t.get(j).is_some_and(|x| x.is(':')) && t.get(j + 1).is_some_and(|x| x.is(':'));
    // `name(` or `name::<…>(`
    let called = |j: usize| -> bool {
        match t.get(j) {
            Some(Tok::Punct('(')) => true,
            Some(Tok::Punct(':')) if path_sep(j) && t.get(j + 2).is_some_and(|x| x.is('<')) => {
                let mut angle = 0;
                for (k, tok) in t.iter().enumerate().skip(j + 2) {
                    match tok {
                        Tok::Punct('<') => angle += 1,
                        Tok::Punct('>') => {
                            angle -= 1;
                            if angle == 0 {
                                return t.get(k + 1).is_some_and(|x| x.is('('));
                            }
                        }
                        _ => {}
                    }
                }
                false
            }
            _ => false,
        }
    };
    for j in 0..t.len() {
        match &t[j] {
            Tok::Punct('.') => {
                if let Some(name) = t.get(j + 1).and_then(|x| x.ident()) {
                    if called(j + 2) {
                        out.insert(Ref::Method(name.to_string()));
                    }
                }
            }
            Tok::Ident(s) if s == "Tensor" && path_sep(j + 1) => {
                if let Some(name) = t.get(j + 3).and_then(|x| x.ident()) {
                    if called(j + 4) {
                        out.insert(Ref::Method(name.to_string()));
                    }
                }
            }
            Tok::Ident(s) if s == "Activation" && path_sep(j + 1) => {
                if let Some(v) = t.get(j + 3).and_then(|x| x.ident()) {
                    out.insert(Ref::Nn(format!("Activation::{v}")));
                }
            }
            Tok::Ident(s) if s == "candle_nn" && path_sep(j + 1) => {
                let mut path = Vec::new();
                let mut k = j + 3;
                while let Some(seg) = t.get(k).and_then(|x| x.ident()) {
                    path.push(seg.to_string());
                    if !path_sep(k + 1) {
                        break;
                    }
                    k += 3;
                }
                if !path.is_empty() {
                    out.insert(Ref::Nn(path.join("::")));
                }
            }
            _ => {}
        }
    }
    out
}

/// Whether a reference names an item: a method by name; a candle-nn path by its full
/// `module::name`, or a re-exported struct (`candle_nn::Linear`, or its constructor
/// `candle_nn::Linear::new`) by its name alone. A bare
/// re-exported fn (`candle_nn::rms_norm`) is not matched: it is a `VarBuilder` constructor of
/// another module, not the `ops` function of the same name.
fn names(r: &Ref, item: &Item, core: bool) -> bool {
    match (r, core) {
        (Ref::Method(m), true) => *m == item.key,
        (Ref::Nn(p), false) => {
            // `Linear::new` names the struct `Linear` (an associated fn of a re-exported struct).
            let head = p.split("::").next().unwrap_or(p);
            let is_struct_path =
                head.starts_with(char::is_uppercase) && p.matches("::").count() <= 1;
            *p == item.key || (is_struct_path && item.key.rsplit("::").next() == Some(head))
        }
        _ => false,
    }
}

/// One registry entry's candle calls: a sweep op or a suite case.
#[derive(Debug)]
pub struct Covering {
    pub name: String,
    pub sweep: bool,
    pub refs: BTreeSet<Ref>,
    pub backward: bool,
    pub dtypes: Vec<String>,
}

/// The sweep's ops: the calls in `call` and in `code` for every systematic cell (`plan` at the
/// default seed), backward when `grads` is non-empty, the op's dtypes.
pub fn sweep_coverings() -> Vec<Covering> {
    use crate::sweep::{ops::OPS, plan, DEFAULT_SEED};
    const VARS: &[&str] = &["a", "b", "c", "d", "e", "f"];
    OPS.iter()
        .map(|op| {
            let mut r = refs(&tokenize(op.call));
            for cell in plan(op, DEFAULT_SEED, 0) {
                r.extend(refs(&tokenize(&(op.code)(&cell, VARS))));
            }
            Covering {
                name: op.name.to_string(),
                sweep: true,
                refs: r,
                backward: !op.grads.is_empty(),
                dtypes: op.dtypes.iter().map(|d| d.as_str().to_string()).collect(),
            }
        })
        .collect()
}

/// One case's candle calls, from its file's code: comments, strings and the plain-Rust
/// `SnippetRun::Check` function left out, the calls of `NOT_TENSOR_CALLS` removed; backward
/// when the code calls `.backward()`; the dtypes its code names (`DType::X`).
pub fn case_covering(name: &str, src: &str) -> Covering {
    let t = tokenize(src);
    let items = parse_items(&t);
    // The snippet check's name: `SnippetRun::Check(<fn>)`.
    let check: Option<&str> = t.windows(6).find_map(|w| match w {
        [Tok::Ident(a), Tok::Punct(':'), Tok::Punct(':'), Tok::Ident(b), Tok::Punct('('), Tok::Ident(f)]
            if a == "SnippetRun" && b == "Check" =>
        {
            Some(f.as_str())
        }
        _ => None,
    });
    let mut code = t.clone();
    if let Some(f) = items.fns.iter().find(|f| Some(f.name.as_str()) == check) {
        code.drain(f.span.0..=f.span.1);
    }
    let mut r = refs(&code);
    let backward = r.contains(&Ref::Method("backward".into()));
    for (case, m, _) in NOT_TENSOR_CALLS {
        if *case == name {
            r.remove(&Ref::Method(m.to_string()));
        }
    }
    let dtypes: BTreeSet<String> = code
        .windows(4)
        .filter_map(|w| match w {
            [Tok::Ident(a), Tok::Punct(':'), Tok::Punct(':'), Tok::Ident(d)] if a == "DType" => {
                Some(d.to_lowercase())
            }
            _ => None,
        })
        .collect();
    Covering {
        name: name.to_string(),
        sweep: false,
        refs: r,
        backward,
        dtypes: dtypes.into_iter().collect(),
    }
}

/// The suite's cases (`cases::all()`), each read from `<cases_dir>/<name>.rs`.
pub fn case_coverings(cases_dir: &Path) -> Result<Vec<Covering>, Error> {
    crate::cases::all()
        .iter()
        .map(|c| {
            let p = cases_dir.join(format!("{}.rs", c.name));
            Ok(case_covering(c.name, &read(&p)?))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// cargo metadata.

/// Where candle's sources and this workspace are, from `cargo metadata` run in `dir`.
#[derive(Debug)]
pub struct Sources {
    pub core_version: String,
    pub nn_version: String,
    pub core_src: PathBuf,
    pub nn_src: PathBuf,
    pub workspace_root: PathBuf,
}

pub fn locate(dir: &Path) -> Result<Sources, Error> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = std::process::Command::new(&cargo)
        .args(["metadata", "--format-version", "1"])
        .current_dir(dir)
        .output()
        .map_err(|e| Error::input(format!("cannot run `cargo metadata`: {e}")))?;
    if !out.status.success() {
        return Err(Error::input(format!(
            "`cargo metadata` failed in {} (run from the checkout): {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::internal(format!("`cargo metadata` output: {e}")))?;
    let package = |name: &str| -> Result<(String, PathBuf), Error> {
        let p = meta["packages"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .ok_or_else(|| Error::input(format!("`cargo metadata` lists no package {name}")))?;
        let manifest = PathBuf::from(p["manifest_path"].as_str().unwrap_or_default());
        let src = manifest.parent().unwrap_or(Path::new(".")).join("src");
        Ok((p["version"].as_str().unwrap_or("?").to_string(), src))
    };
    let (core_version, core_src) = package("candle-core")?;
    let (nn_version, nn_src) = package("candle-nn")?;
    Ok(Sources {
        core_version,
        nn_version,
        core_src,
        nn_src,
        workspace_root: PathBuf::from(meta["workspace_root"].as_str().unwrap_or(".")),
    })
}

// ---------------------------------------------------------------------------------------------
// The page.

/// Where the repo's case files live, relative to the workspace root.
pub const CASES_DIR: &str = "repro/src/cases";

struct Row<'a> {
    item: &'a Item,
    by: Vec<&'a Covering>,
}

impl Row<'_> {
    fn forward(&self) -> String {
        marks(self.by.iter().map(|c| c.sweep))
    }

    fn backward(&self) -> String {
        marks(self.by.iter().filter(|c| c.backward).map(|c| c.sweep))
    }

    fn dtypes(&self) -> String {
        let set = |sweep: bool| -> Vec<String> {
            let mut all: Vec<String> = Vec::new();
            for c in self.by.iter().filter(|c| c.sweep == sweep) {
                for d in &c.dtypes {
                    if !all.contains(d) {
                        all.push(d.clone());
                    }
                }
            }
            all
        };
        sweep_and_cases(("sweep: ", set(true)), ("cases: ", set(false)), " ")
    }

    fn by(&self) -> String {
        let names = |sweep: bool| -> Vec<String> {
            self.by
                .iter()
                .filter(|c| c.sweep == sweep)
                .map(|c| format!("`{}`", c.name))
                .collect()
        };
        sweep_and_cases(("op ", names(true)), ("case ", names(false)), ", ")
    }
}

/// `<label><items joined by sep>` for the sweep's half and the cases' half, `; ` between them, an
/// empty half left out.
fn sweep_and_cases(sweep: (&str, Vec<String>), cases: (&str, Vec<String>), sep: &str) -> String {
    [sweep, cases]
        .into_iter()
        .filter(|(_, items)| !items.is_empty())
        .map(|(label, items)| format!("{label}{}", items.join(sep)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// "sweep", "case", "sweep + case" or "—".
fn marks(kinds: impl Iterator<Item = bool>) -> String {
    let (mut s, mut c) = (false, false);
    for k in kinds {
        if k {
            s = true
        } else {
            c = true
        }
    }
    match (s, c) {
        (true, true) => "sweep + case".into(),
        (true, false) => "sweep".into(),
        (false, true) => "case".into(),
        (false, false) => "—".into(),
    }
}

fn rows<'a>(items: &'a [Item], coverings: &'a [Covering], core: bool) -> Vec<Row<'a>> {
    let mut rows: Vec<Row> = items
        .iter()
        .map(|item| Row {
            item,
            by: coverings
                .iter()
                .filter(|c| c.refs.iter().any(|r| names(r, item, core)))
                .collect(),
        })
        .collect();
    rows.sort_by(|a, b| a.item.key.cmp(&b.item.key));
    rows
}

fn table(out: &mut String, rows: &[Row]) {
    out.push_str("| item | forward | backward | dtypes | by |\n|---|---|---|---|---|\n");
    for r in rows {
        out.push_str(&format!(
            "| `{}` ({}) | {} | {} | {} | {} |\n",
            r.item.key,
            r.item.file,
            r.forward(),
            r.backward(),
            r.dtypes(),
            r.by()
        ));
    }
}

/// The page, from candle's sources and the registries.
pub fn generate(src: &Sources) -> Result<String, Error> {
    let core = core_items(&src.core_src)?;
    let nn = nn_items(&src.nn_src)?;
    let mut coverings = sweep_coverings();
    coverings.extend(case_coverings(&src.workspace_root.join(CASES_DIR))?);
    Ok(render(src, &core, &nn, &coverings))
}

fn render(src: &Sources, core: &CoreItems, nn: &[Item], coverings: &[Covering]) -> String {
    let core_rows = rows(&core.items, coverings, true);
    let nn_rows = rows(nn, coverings, false);
    let all: Vec<&Row> = core_rows.iter().chain(&nn_rows).collect();
    let fwd = all.iter().filter(|r| !r.by.is_empty()).count();
    let bwd = all
        .iter()
        .filter(|r| r.by.iter().any(|c| c.backward))
        .count();
    let crate_dir = |name: &str, v: &str| format!("{name}-{v}/src");
    let core_dir = crate_dir("candle-core", &src.core_version);
    let nn_dir = crate_dir("candle-nn", &src.nn_version);
    let core_files: BTreeSet<&str> = core
        .items
        .iter()
        .chain(&core.skipped)
        .map(|i| i.file.as_str())
        .collect();
    let nn_files: BTreeSet<&str> = NN_FN_FILES.iter().chain(NN_MODULE_FILES).copied().collect();

    let mut o = String::new();
    o.push_str("# What the project checks in candle\n\n");
    o.push_str(
        "Generated by `cargo run -p repro -- coverage` from candle's sources and this project's \
         registries; do not edit (a test fails when this page is stale).\n\n",
    );
    o.push_str(&format!(
        "**{} items** ({} candle-core, {} candle-nn): **{fwd} covered forward**, **{bwd} covered \
         backward**, **{} not covered**.\n\n",
        all.len(),
        core_rows.len(),
        nn_rows.len(),
        all.len() - fwd
    ));
    o.push_str(&format!(
        "candle-core {} and candle-nn {} (the versions `cargo metadata` resolves for this \
         workspace). Read: every `src/*.rs` of candle-core (items found in {}); of candle-nn, \
         {}.\n\n",
        src.core_version,
        src.nn_version,
        core_files
            .iter()
            .map(|f| format!("`{core_dir}/{f}`"))
            .collect::<Vec<_>>()
            .join(", "),
        nn_files
            .iter()
            .map(|f| format!("`{nn_dir}/{f}`"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    o.push_str(
        "## How the columns are derived\n\n\
         - **item**: candle-core: every `pub fn` of an inherent `impl Tensor` block, including the \
         methods candle writes with its own `macro_rules!` (`unary_op!(exp, Exp)`, `binary_op!`, \
         `broadcast_binary_op!`, …); candle-nn: the public free fns of `ops.rs`, `rotary_emb.rs` and \
         `loss.rs` (`module::fn`), the variants of `Activation`, and the public structs implementing \
         `Module` in `ops.rs`, `activation.rs`, `layer_norm.rs`, `linear.rs`, `embedding.rs`. \
         `#[cfg(test)]` code and non-public fns are left out; so are trait methods (`IndexOp::i`, \
         the `+ - * /` operators) and items inside nested modules.\n\
         - **forward**: `sweep` when an op of the sweep's `OPS` table (`repro/src/sweep/ops.rs`) \
         calls the item — the calls named in the op's `call` string and in the Rust source its \
         `code` writes for every systematic cell; `case` when a suite case (`repro::cases::all()`) \
         calls it — a method call `.name(`, `Tensor::name(`, `candle_nn::…` or `Activation::…` in \
         the case file's code (comments, strings and its plain-Rust snippet check left out).\n\
         - **backward**: `sweep` when such an op differentiates an input (its `grads` is not \
         empty); `case` when the case file that calls the item also calls `.backward()`.\n\
         - **dtypes**: the sweep ops' dtype lists (`dtypes`; the index, condition or target dtype \
         is not shown); for cases, the dtypes its code names (`DType::X`), which is less exact.\n\
         - **by**: the sweep ops and the cases found above.\n\n\
         Not counted: the candle calls the sweep's harness makes around an op (building the \
         layouts, `sum(out · w)` for the gradient, reading results back) and those inside \
         `harness::Probe`; the performance repros and moe-core, which check timings and a \
         model rather than an op's result. A candle-nn function covers no candle-core method \
         it calls internally.\n\n",
    );

    o.push_str("## candle-core: `Tensor` methods\n\n");
    table(&mut o, &core_rows);
    o.push_str("\n## candle-nn\n\n");
    table(&mut o, &nn_rows);

    o.push_str("\n## Left out\n\n");
    o.push_str("`Tensor` methods found but not listed above:\n\n| method | reason |\n|---|---|\n");
    let mut by_reason: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for it in &core.skipped {
        let reason = skip_reason(&it.key).unwrap_or("");
        by_reason
            .entry(reason)
            .or_default()
            .push(format!("`{}` ({})", it.key, it.file));
    }
    for (reason, names) in &by_reason {
        o.push_str(&format!("| {} | {reason} |\n", names.join(", ")));
    }
    o.push_str(&format!(
        "\nAlso left out: {} `#[cfg(test)]` fns inside candle-core's `impl Tensor` blocks.\n",
        core.test_only
    ));
    if core.unexpanded.is_empty() {
        o.push_str(
            "Every macro invocation inside an `impl Tensor` block was expanded to its method.\n",
        );
    } else {
        o.push_str(&format!(
            "Macro invocations inside `impl Tensor` that the parser could not expand (their \
             methods are missing above): {}.\n",
            core.unexpanded.join(", ")
        ));
    }
    o.push_str("\nCalls in case files that are not candle `Tensor` methods (removed by hand, each checked to still occur):\n\n");
    for (case, m, why) in NOT_TENSOR_CALLS {
        o.push_str(&format!("- `{case}`: `.{m}(` — {why}\n"));
    }
    let all_items: Vec<&Item> = core.items.iter().chain(&core.skipped).collect();
    let mut unmatched = Vec::new();
    for c in coverings.iter().filter(|c| c.sweep) {
        for r in &c.refs {
            let hit = match r {
                Ref::Method(_) => all_items.iter().any(|i| names(r, i, true)),
                Ref::Nn(_) => nn.iter().any(|i| names(r, i, false)),
            };
            if !hit {
                unmatched.push(format!("`{:?}` in op `{}`", r, c.name));
            }
        }
    }
    if unmatched.is_empty() {
        o.push_str("\nEvery candle call of every sweep op names an item above.\n");
    } else {
        o.push_str(&format!(
            "\nSweep calls that name no item above: {}.\n",
            unmatched.join(", ")
        ));
    }
    o
}

/// `repro coverage`: writes `<report_dir>/COVERAGE.md`.
pub fn run_command(report_dir: &Path) -> Result<PathBuf, Error> {
    let src = locate(Path::new("."))?;
    let text = generate(&src)?;
    std::fs::create_dir_all(report_dir).map_err(|e| Error::io(report_dir, e))?;
    let p = report_dir.join(PAGE);
    harness::report::write_atomic(&p, &text).map_err(|e| Error::io(&p, e))?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_struct_constructor_names_the_struct_and_nothing_else() {
        let item = |key: &str| Item {
            key: key.into(),
            file: "linear.rs".into(),
        };
        let nn = |p: &str| Ref::Nn(p.into());
        assert!(names(&nn("Linear::new"), &item("linear::Linear"), false));
        assert!(names(&nn("Linear"), &item("linear::Linear"), false));
        assert!(!names(
            &nn("Module::forward"),
            &item("linear::Linear"),
            false
        ));
        assert!(!names(
            &nn("ops::rms_norm"),
            &item("layer_norm::RmsNorm"),
            false
        ));
        assert!(names(&nn("ops::rms_norm"), &item("ops::rms_norm"), false));
    }

    fn methods(src: &str) -> Vec<String> {
        tensor_methods(src).0
    }

    #[test]
    fn coverage_parser_finds_pub_fns_of_impl_tensor_only() {
        let src = r#"
            impl Tensor {
                /// docs with `pub fn fake(` in them
                pub fn narrow(&self, d: usize) -> Result<Self> {
                    fn inner() {}
                    let s = "pub fn in_a_string() {";
                    let c = '{';
                    Ok(self.clone())
                }
                fn private(&self) {}
                pub(crate) fn crate_only(&self) {}
                pub const fn konst(&self) -> usize { 0 }
                #[cfg(test)]
                pub fn test_helper(&self) {}
                #[cfg(feature = "cuda")]
                pub fn cuda_only<'a>(&'a self) -> &'a Self { self }
            }
            impl Foo { pub fn not_tensor(&self) {} }
            impl std::ops::Add<Tensor> for Tensor { fn add(self, r: Tensor) -> Tensor { r } }
            impl<T: Into<f64>> crate::Tensor { pub fn generic_impl(&self) {} }
        "#;
        assert_eq!(
            methods(src),
            ["narrow", "konst", "cuda_only", "generic_impl"]
        );
        assert_eq!(tensor_methods(src).1, 1, "one cfg(test) fn left out");
    }

    #[test]
    fn coverage_parser_expands_macro_written_methods() {
        let src = r#"
            macro_rules! unary_op {
                ($fn_name:ident, $op_name:ident) => {
                    pub fn $fn_name(&self) -> Result<Self> { self.unary::<$op_name>() }
                };
            }
            macro_rules! extract_dims {
                ($fn_name:ident, $cnt:tt, $dims:expr, $out_type:ty) => {
                    impl Shape { pub fn $fn_name(&self) -> Result<$out_type> { todo!() } }
                    impl crate::Tensor {
                        pub fn $fn_name(&self) -> Result<$out_type> { self.shape().$fn_name() }
                    }
                };
            }
            impl Tensor {
                unary_op!(exp, Exp);
                unary_op!(log, Log);
                undefined_here!(mystery);
            }
            extract_dims!(dims2, 2, |d: &[usize]| (d[0], d[1]), (usize, usize));
            #[cfg(test)]
            mod tests {
                impl Tensor { pub fn in_test_mod(&self) {} }
            }
        "#;
        let (names, _, unexpanded) = tensor_methods(src);
        assert_eq!(names, ["exp", "log", "dims2"]);
        assert_eq!(unexpanded, ["undefined_here!"]);
    }

    #[test]
    fn coverage_parser_reads_enums_structs_and_module_impls() {
        let src = r#"
            pub enum Activation {
                #[default]
                #[serde(alias = "gelu")]
                Gelu,
                Elu(f64),
                Named { x: f32 },
            }
            pub struct Linear { weight: Tensor }
            struct Hidden;
            pub struct NoModule(f32);
            impl super::Module for Linear { fn forward(&self) {} }
            impl crate::Module for Hidden { fn forward(&self) {} }
            pub fn free(x: &Tensor) -> Result<Tensor> { x.exp() }
            #[cfg(test)]
            pub fn only_in_tests() {}
        "#;
        let items = parse_items(&tokenize(src));
        assert_eq!(items.enums[0].variants, ["Gelu", "Elu", "Named"]);
        assert_eq!(
            items.structs,
            [
                ("Linear".to_string(), true),
                ("Hidden".to_string(), false),
                ("NoModule".to_string(), true)
            ]
        );
        let modules: Vec<_> = items
            .impls
            .iter()
            .map(|i| (i.trait_name.clone(), i.self_ty.clone()))
            .collect();
        assert_eq!(
            modules,
            [
                (Some("Module".into()), "Linear".into()),
                (Some("Module".into()), "Hidden".into())
            ]
        );
        let fns: Vec<_> = items.fns.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(fns, ["free"]);
        assert_eq!(items.test_only, ["only_in_tests"]);
    }

    #[test]
    fn coverage_refs_name_methods_tensor_calls_and_nn_paths() {
        let r = refs(&tokenize(
            "x.index_select(&i, 0)?; Tensor::cat(&[&a], 0)?; candle_nn::ops::softmax(&x, 1)?; \
             let a = candle_nn::Activation::Gelu; y.to_dtype::<f32>(); z.len; \"w.in_string()\"",
        ));
        let want: BTreeSet<Ref> = [
            Ref::Method("index_select".into()),
            Ref::Method("cat".into()),
            Ref::Method("to_dtype".into()),
            Ref::Nn("ops::softmax".into()),
            Ref::Nn("Activation::Gelu".into()),
        ]
        .into_iter()
        .collect();
        assert_eq!(r, want);
    }

    #[test]
    fn coverage_every_sweep_op_calls_a_candle_item() {
        for c in sweep_coverings() {
            assert!(!c.refs.is_empty(), "op {} names no candle call", c.name);
        }
    }

    /// Each hand-listed non-Tensor call still occurs in its case file, so the list cannot
    /// outlive the call it explains.
    #[test]
    fn coverage_not_tensor_calls_still_occur() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cases");
        for (case, m, _) in NOT_TENSOR_CALLS {
            let src = std::fs::read_to_string(dir.join(format!("{case}.rs"))).unwrap();
            assert!(
                refs(&tokenize(&src)).contains(&Ref::Method(m.to_string())),
                "{case}.rs no longer calls `.{m}(`: remove it from NOT_TENSOR_CALLS"
            );
        }
    }

    /// The committed reports/COVERAGE.md is what `repro coverage` generates now: regenerated
    /// into a temporary folder and compared.
    #[test]
    fn coverage_committed_page_is_current() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let src = locate(&root).expect("cargo metadata");
        let tmp = std::env::temp_dir().join(format!("coverage-page-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        let generated = tmp.join(PAGE);
        harness::report::write_atomic(&generated, &generate(&src).expect("generate")).unwrap();
        let generated = std::fs::read_to_string(&generated).unwrap();
        let _ = std::fs::remove_dir_all(&tmp);
        let committed =
            std::fs::read_to_string(root.join("reports").join(PAGE)).unwrap_or_else(|e| {
                panic!("reports/{PAGE}: {e}: run `cargo run -p repro -- coverage`")
            });
        if committed != generated {
            let line = committed
                .lines()
                .zip(generated.lines())
                .position(|(a, b)| a != b)
                .map_or_else(|| "length".to_string(), |n| format!("line {}", n + 1));
            panic!(
                "reports/{PAGE} is stale (first difference: {line}): run `cargo run -p repro -- coverage` and review the diff"
            );
        }
    }
}
