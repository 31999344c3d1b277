//! Tokenizer: identifiers (`$name` in macro bodies), punctuation, literals and lifetimes;
//! comments and whitespace dropped. Enough Rust to walk items; string contents never look like
//! code.

#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    Ident(String),
    Punct(char),
    Lit,
    Lifetime,
}

impl Tok {
    pub(super) fn is(&self, c: char) -> bool {
        *self == Tok::Punct(c)
    }

    pub(super) fn ident(&self) -> Option<&str> {
        match self {
            Tok::Ident(s) => Some(s),
            _ => None,
        }
    }

    pub(super) fn is_ident(&self, s: &str) -> bool {
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
