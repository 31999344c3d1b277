//! What the project calls: the candle calls of each sweep op and each suite case, and which
//! item a call names.

use super::candle::Item;
use super::parser::parse_items;
use super::sources::read;
use super::tokenizer::{tokenize, Tok};
use crate::error::Error;
use std::collections::BTreeSet;
use std::path::Path;

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

/// A candle item named by a call in the project's code.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ref {
    /// `x.name(…)` or `Tensor::name(…)`.
    Method(String),
    /// `candle_nn::a::b(…)`, `candle_nn::Name`, `Activation::Variant`: the path after
    /// `candle_nn::` (or `Activation::Variant`).
    Nn(String),
    /// `candle_core::quantized::QTensor::quantize`, `…::GgmlDType::Q4_0`: the path after
    /// `quantized::`.
    Quantized(String),
}

/// Which table an item is in: candle-core's `Tensor` methods, candle-nn, or candle-core's
/// quantized API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Core,
    Nn,
    Quantized,
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
            // `candle_core::Module::forward(&m, &x)`: the trait's method, called.
            Tok::Ident(s) if (s == "Module" || s == "ModuleT") && path_sep(j + 1) => {
                if let Some(name) = t.get(j + 3).and_then(|x| x.ident()) {
                    if called(j + 4) {
                        out.insert(Ref::Method(name.to_string()));
                    }
                }
            }
            Tok::Ident(s) if (s == "candle_nn" || s == "quantized") && path_sep(j + 1) => {
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
                    let path = path.join("::");
                    out.insert(if s == "candle_nn" {
                        Ref::Nn(path)
                    } else {
                        Ref::Quantized(path)
                    });
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
pub(super) fn names(r: &Ref, item: &Item, core: bool) -> bool {
    match (r, core) {
        (Ref::Method(m), true) => *m == item.key,
        (Ref::Nn(p), false) => {
            // `Linear::new` names the struct `Linear` (an associated fn of a re-exported struct).
            let head = p.split("::").next().unwrap_or(p);
            let is_struct_path =
                head.starts_with(char::is_uppercase) && p.matches("::").count() <= 1;
            // `kv_cache::KvCache::new` names the struct `kv_cache::KvCache`.
            let last = item.key.rsplit("::").next().unwrap_or_default();
            let full_struct_path = last.starts_with(char::is_uppercase)
                && p.strip_prefix(item.key.as_str())
                    .is_some_and(|rest| rest.starts_with("::"));
            *p == item.key
                || full_struct_path
                || (is_struct_path && item.key.rsplit("::").next() == Some(head))
        }
        _ => false,
    }
}

/// Whether a registry entry's calls cover an item. A method item (`kv_cache::KvCache::append`,
/// `QTensor::dequantize`) is covered by its full path, or by its struct being named
/// (constructed) and `.method(` called; `QMatMul::forward[Q4_0]` by a `QMatMul` built, its
/// forward called and `GgmlDType::Q4_0` named.
pub(super) fn covers(refs: &BTreeSet<Ref>, item: &Item, section: Section) -> bool {
    let called = |m: &str| refs.contains(&Ref::Method(m.to_string()));
    match section {
        Section::Core => refs.iter().any(|r| names(r, item, true)),
        Section::Nn => {
            refs.iter().any(|r| names(r, item, false))
                || item.key.matches("::").count() == 2 && {
                    let (ty, m) = item.key.rsplit_once("::").unwrap_or_default();
                    let ty = Item {
                        key: ty.to_string(),
                        file: item.file.clone(),
                    };
                    called(m) && refs.iter().any(|r| names(r, &ty, false))
                }
        }
        Section::Quantized => {
            let (ty, m) = item.key.split_once("::").unwrap_or_default();
            let struct_named = refs
                .iter()
                .any(|r| matches!(r, Ref::Quantized(p) if p.split("::").next() == Some(ty)));
            match m.strip_prefix("forward[").and_then(|d| d.strip_suffix(']')) {
                Some(dtype) => {
                    struct_named
                        && called("forward")
                        && refs.contains(&Ref::Quantized(format!("GgmlDType::{dtype}")))
                }
                None => {
                    refs.contains(&Ref::Quantized(item.key.clone())) || struct_named && called(m)
                }
            }
        }
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
