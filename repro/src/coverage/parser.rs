//! Item walker: the functions, impls, enums, structs, `macro_rules!` definitions and macro
//! invocations of a token stream (brace-aware, no `syn`).

use super::tokenizer::Tok;

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
        let (k, public) = item_head(t, start);
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
            "enum" => enum_item(t, k, public, test_only, &mut items),
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
            _ => macro_call_or_other(t, k, test_only, &mut items),
        };
        test_only = false;
        i = end.max(start) + 1;
    }
    items
}

/// Where an item's keyword is, past its visibility and qualifiers (`const fn`, `async`,
/// `unsafe`, `default`, `extern "…"`), and whether it is `pub`.
fn item_head(t: &[Tok], start: usize) -> (usize, bool) {
    let mut k = start;
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
    (k, public)
}

/// An `enum` whose keyword is at `k`: its variants' names (recorded unless `test_only`); returns
/// the index of its closing brace.
fn enum_item(t: &[Tok], k: usize, public: bool, test_only: bool, items: &mut Items) -> usize {
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

/// A macro invocation `path::name!(…)` at `k` (recorded unless `test_only`), or anything else
/// up to its `;`; returns the index of its last token.
fn macro_call_or_other(t: &[Tok], k: usize, test_only: bool, items: &mut Items) -> usize {
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
