//! Reading Rust source at the token level, enough to take candle's dispatch apart: a function's
//! body found by anchors, the `match` blocks in it, their arms (pattern and result), and the
//! first error a guard raises. Strings and comments are masked before anything structural is
//! searched, so a brace or `match` inside a literal or a comment is never taken for code.

/// Source text with a same-length mask: comments blanked, string and char literal contents
/// replaced by `_` (quotes kept), so byte offsets in the mask index the original text.
pub struct Code {
    pub text: String,
    mask: Vec<u8>,
}

impl Code {
    pub fn new(text: String) -> Code {
        let mask = mask(text.as_bytes());
        Code { text, mask }
    }

    /// The masked text of a range (structure only: literal contents are `_`).
    pub fn masked(&self, from: usize, to: usize) -> &str {
        std::str::from_utf8(&self.mask[from..to]).unwrap_or("")
    }

    /// The first occurrence of `needle` in code (not in a comment or literal) at or after `from`.
    pub fn find(&self, needle: &str, from: usize) -> Option<usize> {
        let n = needle.as_bytes();
        (from..self.mask.len().saturating_sub(n.len() - 1))
            .find(|&i| &self.mask[i..i + n.len()] == n)
    }

    /// The body (between the braces, exclusive) of the item found by searching each anchor in
    /// turn, starting where the previous one matched: `["for Sigmoid", "fn metal_fwd("]`.
    pub fn body(&self, anchors: &[&str]) -> Result<(usize, usize), String> {
        let mut at = 0;
        for a in anchors {
            at = self
                .find(a, at)
                .ok_or_else(|| format!("anchor `{a}` not found (after {anchors:?})"))?;
        }
        let open = self
            .find("{", at)
            .ok_or_else(|| format!("no body after {anchors:?}"))?;
        let close = self.closing(open)?;
        Ok((open + 1, close))
    }

    /// The offset of the bracket closing the one at `open`.
    pub fn closing(&self, open: usize) -> Result<usize, String> {
        let mut depth = 0i32;
        for (i, &b) in self.mask.iter().enumerate().skip(open) {
            match b {
                b'{' | b'(' | b'[' => depth += 1,
                b'}' | b')' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(i);
                    }
                }
                _ => {}
            }
        }
        Err(format!("unbalanced bracket at byte {open}"))
    }

    /// The `match` blocks whose keyword lies in `range`, in source order (nested ones included,
    /// each after the one enclosing it).
    pub fn matches(&self, range: (usize, usize)) -> Result<Vec<Match>, String> {
        let mut out = Vec::new();
        let mut at = range.0;
        while let Some(m) = self.find("match ", at).filter(|&m| m < range.1) {
            at = m + 6;
            let before = if m == 0 { b' ' } else { self.mask[m - 1] };
            if before.is_ascii_alphanumeric() || before == b'_' {
                continue;
            }
            let open = self.block_start(at)?;
            let close = self.closing(open)?;
            out.push(Match {
                scrutinee: squash(&self.text[at..open]),
                arms: self.arms(open + 1, close)?,
                start: m,
                end: close + 1,
            });
        }
        Ok(out)
    }

    /// The `{` opening a match block: the first at bracket depth 0 after the scrutinee.
    fn block_start(&self, from: usize) -> Result<usize, String> {
        let mut depth = 0i32;
        for (i, &b) in self.mask.iter().enumerate().skip(from) {
            match b {
                b'(' | b'[' => depth += 1,
                b')' | b']' => depth -= 1,
                b'{' if depth == 0 => return Ok(i),
                _ => {}
            }
        }
        Err(format!("no match block after byte {from}"))
    }

    fn arms(&self, from: usize, to: usize) -> Result<Vec<Arm>, String> {
        let mut arms = Vec::new();
        let mut i = from;
        loop {
            while i < to && (self.mask[i].is_ascii_whitespace() || self.mask[i] == b',') {
                i += 1;
            }
            if i >= to {
                return Ok(arms);
            }
            let arrow = self
                .find("=>", i)
                .filter(|&a| a < to)
                .ok_or_else(|| format!("arm without `=>` at byte {i}"))?;
            let pattern = squash(&self.text[i..arrow]);
            let mut j = arrow + 2;
            while self.mask[j].is_ascii_whitespace() {
                j += 1;
            }
            let end = if self.mask[j] == b'{' {
                self.closing(j)? + 1
            } else {
                self.expression_end(j, to)
            };
            arms.push(Arm {
                pattern,
                result: squash(&self.text[j..end]),
            });
            i = end;
        }
    }

    /// Where an arm's expression ends: the first `,` at depth 0, or the block's end.
    fn expression_end(&self, from: usize, to: usize) -> usize {
        let mut depth = 0i32;
        for i in from..to {
            match self.mask[i] {
                b'{' | b'(' | b'[' => depth += 1,
                b'}' | b')' | b']' => depth -= 1,
                b',' if depth == 0 => return i,
                _ => {}
            }
        }
        to
    }

    /// The first error raised in `range` after `needle` (a guard's condition): the `bail!` or
    /// `Err(…)` expression, whitespace squashed.
    pub fn raise_after(&self, range: (usize, usize), needle: &str) -> Result<String, String> {
        let at = self
            .find(needle, range.0)
            .filter(|&a| a < range.1)
            .ok_or_else(|| format!("guard `{needle}` not found"))?;
        let first = ["bail!(", "Err("]
            .iter()
            .filter_map(|k| self.find(k, at).filter(|&p| p < range.1))
            .min()
            .ok_or_else(|| format!("no error raised after `{needle}`"))?;
        let open = self.find("(", first).unwrap_or(first);
        let close = self.closing(open)?;
        Ok(squash(&self.text[first..=close]))
    }
}

/// A `match` block: its scrutinee's text and its arms.
#[derive(Clone, Debug)]
pub struct Match {
    pub scrutinee: String,
    pub arms: Vec<Arm>,
    pub start: usize,
    pub end: usize,
}

#[derive(Clone, Debug)]
pub struct Arm {
    pub pattern: String,
    pub result: String,
}

/// One element of a key looked up in a match: a string literal (`"uexp"`) or the last segment
/// of a path or a literal word (`F32` for `DType::F32`, `Max`, `true`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key {
    Str(String),
    Word(String),
}

impl Key {
    pub fn dtype(d: candle_core::DType) -> Key {
        Key::Word(format!("{d:?}"))
    }

    /// How a binding of this element reads in a rendered message (`{dtype:?}` of `F32`: `F32`).
    pub fn text(&self) -> &str {
        match self {
            Key::Str(s) | Key::Word(s) => s,
        }
    }
}

/// Names bound by an arm's pattern (`(k, dtype) =>`), with what they bound.
pub type Bindings = Vec<(String, String)>;

impl Arm {
    /// Whether the pattern matches the key, and what it binds. Alternatives (`A | B`) and
    /// tuples are understood; a lowercase identifier binds, `_` matches anything.
    pub fn matches(&self, key: &[Key]) -> Option<Bindings> {
        split_top(&self.pattern, b'|')
            .iter()
            .find_map(|alt| match_alternative(alt, key))
    }

    /// The string literals of the result, concatenated (a kernel name, or the suffix passed to
    /// a name builder).
    pub fn literal(&self) -> Option<String> {
        let lits = literals(&self.result);
        lits.first().cloned()
    }
}

fn match_alternative(alt: &str, key: &[Key]) -> Option<Bindings> {
    let alt = alt.trim();
    let elems: Vec<String> = if alt.starts_with('(') && alt.ends_with(')') {
        split_top(&alt[1..alt.len() - 1], b',')
    } else {
        vec![alt.to_string()]
    };
    let elems: Vec<&str> = elems
        .iter()
        .map(|e| e.trim())
        .filter(|e| !e.is_empty())
        .collect();
    if elems.len() != key.len() {
        // A single binding or `_` matches a whole tuple key.
        return match (elems.as_slice(), key.len()) {
            (["_"], _) => Some(Vec::new()),
            ([b], _) if is_binding(b) => Some(vec![(b.to_string(), joined(key))]),
            _ => None,
        };
    }
    let mut bound = Vec::new();
    for (e, k) in elems.iter().zip(key) {
        if *e == "_" {
            continue;
        }
        if is_binding(e) {
            bound.push((e.to_string(), k.text().to_string()));
            continue;
        }
        let ok = match k {
            Key::Str(s) => literals(e).first() == Some(s),
            Key::Word(w) => e.rsplit("::").next() == Some(w.as_str()),
        };
        if !ok {
            return None;
        }
    }
    Some(bound)
}

fn joined(key: &[Key]) -> String {
    key.iter().map(Key::text).collect::<Vec<_>>().join(" ")
}

fn is_binding(e: &str) -> bool {
    let first = e.chars().next().unwrap_or('A');
    (first.is_ascii_lowercase() || first == '_')
        && e.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !matches!(e, "true" | "false" | "_")
}

/// Splits at `sep` outside brackets and string literals.
pub fn split_top(s: &str, sep: u8) -> Vec<String> {
    let m = mask(s.as_bytes());
    let mut out = Vec::new();
    let (mut depth, mut last) = (0i32, 0);
    for (i, &b) in m.iter().enumerate() {
        match b {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            _ if b == sep && depth == 0 => {
                out.push(s[last..i].to_string());
                last = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[last..].to_string());
    out
}

/// The string literals in a piece of source, unescaped only for `\"` and `\\`.
pub fn literals(s: &str) -> Vec<String> {
    let b = s.as_bytes();
    let m = mask(b);
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if m[i] == b'"' {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && m[j] != b'"' {
                j += 1;
            }
            out.push(
                s[start..j.min(b.len())]
                    .replace("\\\"", "\"")
                    .replace("\\\\", "\\"),
            );
            i = j + 1;
        } else {
            i += 1;
        }
    }
    out
}

/// Collapses every run of whitespace to one space.
pub fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Comments blanked to spaces, literal contents to `_`; quotes and code kept, same length.
fn mask(b: &[u8]) -> Vec<u8> {
    let mut m = b.to_vec();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                m[i] = b' ';
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            while i < b.len() && !b[i..].starts_with(b"*/") {
                m[i] = b' ';
                i += 1;
            }
            let end = (i + 2).min(b.len());
            m[i..end].fill(b' ');
            i += 2;
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                let esc = b[i] == b'\\';
                m[i] = b'_';
                if esc && i + 1 < b.len() {
                    m[i + 1] = b'_';
                    i += 1;
                }
                i += 1;
            }
            i += 1;
        } else if b[i] == b'\'' {
            // A char literal ('x', '\n', '\''); anything else is a lifetime.
            let len = if b.get(i + 1) == Some(&b'\\') {
                b[i + 2..].iter().position(|&c| c == b'\'').map(|p| p + 3)
            } else if b.get(i + 2) == Some(&b'\'') {
                Some(3)
            } else {
                None
            };
            match len {
                Some(n) => {
                    m[i + 1..i + n - 1].fill(b'_');
                    i += n;
                }
                None => i += 1,
            }
        } else {
            i += 1;
        }
    }
    m
}

/// An arm's result as the error it raises: `bail!("… {dtype:?} …")` formatted with the
/// pattern's bindings (positional `{}` arguments too when they are bound names); any other
/// error expression with its `format!`s formatted, its bound names substituted, and
/// `return Err(…)`, `.bt()` and crate paths dropped.
pub fn render_raise(result: &str, bound: &Bindings) -> String {
    let r = result
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim();
    if let Some(p) = r.find("bail!(") {
        let args = split_top(&r[p + 6..r.rfind(')').unwrap_or(r.len())], b',');
        let fmt = literals(&args[0]).first().cloned().unwrap_or_default();
        return format_with(&fmt, &args[1..], bound);
    }
    let mut s = r.trim_end_matches(['?', ';']).trim().to_string();
    while let Some(p) = s.find("format!(") {
        let code = Code::new(s.clone());
        let Ok(close) = code.closing(p + 7) else {
            break;
        };
        let args = split_top(&s[p + 8..close], b',');
        let fmt = literals(&args[0]).first().cloned().unwrap_or_default();
        s = format!(
            "{}{:?}{}",
            &s[..p],
            format_with(&fmt, &args[1..], bound),
            &s[close + 1..]
        );
    }
    for junk in [
        "return ",
        ".bt()",
        ".into()",
        "crate::Error::",
        "crate::",
        "candle::",
        "MetalKernelError::",
        "MetalError::",
        "DType::",
    ] {
        s = s.replace(junk, "");
    }
    if s.starts_with("Err(") && s.ends_with(')') {
        s = s[4..s.len() - 1].trim().to_string();
    }
    for (name, value) in bound {
        s = replace_word(&s, name, value);
    }
    squash(&s)
        .replace(", }", " }")
        .replace(", )", ")")
        .replace(",)", ")")
        .trim_end_matches(',')
        .to_string()
}

/// Formats a `format!`-style string: named holes from bindings, positional ones from the
/// arguments (a bound name, or left as the argument's text).
fn format_with(fmt: &str, args: &[String], bound: &Bindings) -> String {
    let lookup = |name: &str| {
        bound
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let mut out = String::new();
    let mut rest = fmt;
    let mut positional = args.iter();
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..]
            .find('}')
            .map(|c| open + c)
            .unwrap_or(rest.len() - 1);
        let hole = &rest[open + 1..close];
        let name = hole.split(':').next().unwrap_or("").trim();
        let value = if name.is_empty() {
            positional
                .next()
                .map(|a| lookup(a.trim()).unwrap_or_else(|| squash(a)))
        } else {
            lookup(name)
        };
        out.push_str(&value.unwrap_or_else(|| format!("{{{hole}}}")));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Replaces `word` where it stands as a whole identifier or field path (`ids.dtype`), a
/// getter call's `()` included, outside string literals.
pub fn replace_word(s: &str, word: &str, with: &str) -> String {
    let b = s.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'.';
    let mut out = String::new();
    let (mut i, mut in_str) = (0, false);
    while i < s.len() {
        let whole = !in_str
            && s[i..].starts_with(word)
            && (i == 0 || !ident(b[i - 1]))
            && !b
                .get(i + word.len())
                .is_some_and(|&c| ident(c) && c != b'.');
        if whole {
            out.push_str(with);
            i += word.len();
            if s[i..].starts_with("()") {
                i += 2;
            }
            continue;
        }
        let c = s[i..].chars().next().unwrap_or(' ');
        if c == '"' && (i == 0 || b[i - 1] != b'\\') {
            in_str = !in_str;
        }
        out.push(c);
        i += c.len_utf8();
    }
    out
}
