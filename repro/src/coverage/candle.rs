//! The items of candle: the `Tensor` methods of candle-core and candle-nn's functions,
//! `Activation` variants and `Module` structs, with the accessors left out and why.

use super::parser::{parse_items, MacroCall};
use super::sources::read;
use super::tokenizer::{tokenize, Tok};
use crate::error::Error;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// candle-nn files whose public free functions are items.
pub(super) const NN_FN_FILES: &[&str] = &[
    "ops.rs",
    "rotary_emb.rs",
    "loss.rs",
    "conv.rs",
    "batch_norm.rs",
    "group_norm.rs",
];
/// candle-nn files whose public structs implementing `Module` (or `ModuleT`) are items (and
/// `Activation`'s variants, from activation.rs).
pub(super) const NN_MODULE_FILES: &[&str] = &[
    "ops.rs",
    "activation.rs",
    "layer_norm.rs",
    "linear.rs",
    "embedding.rs",
    "conv.rs",
    "batch_norm.rs",
    "group_norm.rs",
];
/// candle-nn methods that are items of their own, `module::Struct::method`: (file, struct,
/// method), `*` for every public struct of the file with that public method. Each must be
/// found (the page refuses to generate otherwise).
pub(super) const NN_METHODS: &[(&str, &str, &str)] = &[
    // BatchNorm's training pass (batch statistics, running stats updated); its eval pass is
    // the `ModuleT` struct item.
    ("batch_norm.rs", "BatchNorm", "forward_train"),
    // Every cache's append (the concatenation a decode step runs).
    ("kv_cache.rs", "*", "append"),
    // VarBuilder's two dtype conversions: `get` to the builder's dtype (`to_dtype` changes
    // it), `get_unchecked` to the backend data's dtype (`set_dtype` changes it).
    ("var_builder.rs", "VarBuilderArgs", "get"),
    ("var_builder.rs", "VarBuilderArgs", "get_unchecked"),
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

pub(super) fn skip_reason(name: &str) -> Option<&'static str> {
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
                .filter(|i| matches!(i.trait_name.as_deref(), Some("Module" | "ModuleT")))
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
    out.extend(nn_methods(src_dir)?);
    if out.is_empty() {
        return Err(Error::internal(format!(
            "found no candle-nn items in {}",
            src_dir.display()
        )));
    }
    Ok(out)
}

/// The methods of `NN_METHODS`, each found in its file (an error names the one missing).
fn nn_methods(src_dir: &Path) -> Result<Vec<Item>, Error> {
    let mut out = Vec::new();
    for (file, ty, method) in NN_METHODS {
        let items = parse_items(&tokenize(&read(&src_dir.join(file))?));
        let public: BTreeSet<&str> = items
            .structs
            .iter()
            .filter(|(_, p)| *p)
            .map(|(n, _)| n.as_str())
            .collect();
        let module = file.trim_end_matches(".rs");
        let found: BTreeSet<&str> = items
            .impls
            .iter()
            .filter(|i| i.trait_name.is_none() && (*ty == "*" || i.self_ty == *ty))
            .filter(|i| *ty != "*" || public.contains(i.self_ty.as_str()))
            .filter(|i| i.body.fns.iter().any(|f| f.public && f.name == *method))
            .map(|i| i.self_ty.as_str())
            .collect();
        if found.is_empty() {
            return Err(Error::internal(format!(
                "candle-nn's {file} has no public `{ty}::{method}`: has candle changed?"
            )));
        }
        out.extend(found.into_iter().map(|s| Item {
            key: format!("{module}::{s}::{method}"),
            file: file.to_string(),
        }));
    }
    Ok(out)
}

/// The file of candle-core's quantized API, relative to its src/.
pub(super) const QUANTIZED_FILE: &str = "quantized/mod.rs";

/// Public fns of `QTensor`/`QMatMul` left out of the quantized table, with the reason.
const Q_SKIPPED: &[(&str, &str)] = &[
    ("dtype", "metadata accessor: no kernel runs"),
    ("device", "metadata accessor: no kernel runs"),
    ("rank", "metadata accessor: no kernel runs"),
    ("shape", "metadata accessor: no kernel runs"),
    ("storage_size_in_bytes", "metadata accessor: no kernel runs"),
    ("data", "raw storage access (the backend's buffer itself)"),
    (
        "device_ptr",
        "raw storage access (the backend's buffer itself)",
    ),
    (
        "device_ptr_with_guard",
        "raw storage access (the backend's buffer itself)",
    ),
];

/// Why a quantized item (`QTensor::dtype`) is left out, if it is.
pub(super) fn q_skip_reason(key: &str) -> Option<&'static str> {
    let method = key.rsplit("::").next()?;
    Q_SKIPPED
        .iter()
        .find(|(k, _)| *k == method)
        .map(|(_, r)| *r)
}

/// candle-core's quantized API (`src/quantized/mod.rs`): the public fns of the inherent
/// `impl QTensor` and `impl QMatMul` blocks (`QTensor::quantize`), and `QMatMul`'s
/// `Module::forward` once per variant of `GgmlDType` (`QMatMul::forward[Q4_0]`): each weight
/// dtype takes its own kernel. Returns the items and the accessors left out.
pub fn quantized_items(core_src: &Path) -> Result<(Vec<Item>, Vec<Item>), Error> {
    let items = parse_items(&tokenize(&read(&core_src.join(QUANTIZED_FILE))?));
    let item = |key: String| Item {
        key,
        file: QUANTIZED_FILE.to_string(),
    };
    let (mut out, mut skipped) = (Vec::new(), Vec::new());
    let mut seen = BTreeSet::new();
    for imp in &items.impls {
        let ty = imp.self_ty.as_str();
        if imp.trait_name.is_some() || !matches!(ty, "QTensor" | "QMatMul") {
            continue;
        }
        for f in imp.body.fns.iter().filter(|f| f.public) {
            let key = format!("{ty}::{}", f.name);
            if !seen.insert(key.clone()) {
                continue;
            }
            if q_skip_reason(&key).is_some() {
                skipped.push(item(key));
            } else {
                out.push(item(key));
            }
        }
    }
    let forward = items.impls.iter().any(|i| {
        i.trait_name.as_deref() == Some("Module")
            && i.self_ty == "QMatMul"
            && i.body.fns.iter().any(|f| f.name == "forward")
    });
    let dtypes = items
        .enums
        .iter()
        .find(|e| e.public && e.name == "GgmlDType");
    match (forward, dtypes) {
        (true, Some(e)) if !out.is_empty() => {
            out.extend(
                e.variants
                    .iter()
                    .map(|v| item(format!("QMatMul::forward[{v}]"))),
            );
            Ok((out, skipped))
        }
        _ => Err(Error::internal(format!(
            "found no `QMatMul` forward, `GgmlDType` or `QTensor` fns in {}: has candle's \
             layout changed?",
            core_src.join(QUANTIZED_FILE).display()
        ))),
    }
}
