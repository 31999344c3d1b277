//! The page: the tables of items with what covers them, the left-out lists and the checks of
//! the sweep's calls, rendered as markdown.

use super::calls::{
    case_coverings, covers, names, sweep_coverings, Covering, Ref, Section, NOT_TENSOR_CALLS,
};
use super::candle::{
    core_items, nn_items, q_skip_reason, quantized_items, skip_reason, CoreItems, Item,
    NN_FN_FILES, NN_METHODS, NN_MODULE_FILES, QUANTIZED_FILE,
};
use super::excluded::{excluded, EXCLUDED};
use super::sources::Sources;
use crate::error::Error;
use std::collections::{BTreeMap, BTreeSet};

/// Where the repo's case files live, relative to the workspace root.
pub const CASES_DIR: &str = "repro/src/cases";

struct Row<'a> {
    item: &'a Item,
    by: Vec<&'a Covering>,
    excluded: Option<&'static str>,
}

impl Row<'_> {
    fn forward(&self) -> String {
        match (self.by.is_empty(), self.excluded) {
            (true, Some(why)) => format!("excluded ({why})"),
            _ => marks(self.by.iter().map(|c| c.sweep)),
        }
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

fn rows<'a>(items: &'a [Item], coverings: &'a [Covering], section: Section) -> Vec<Row<'a>> {
    let mut rows: Vec<Row> = items
        .iter()
        .map(|item| Row {
            item,
            by: coverings
                .iter()
                .filter(|c| covers(&c.refs, item, section))
                .collect(),
            excluded: excluded(item),
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
    let items = all_items(src)?;
    let mut coverings = sweep_coverings();
    coverings.extend(case_coverings(&src.workspace_root.join(CASES_DIR))?);
    Ok(render(src, &items, &coverings))
}

/// Every item the page lists, by table, and the ones left out.
pub struct AllItems {
    pub core: CoreItems,
    pub nn: Vec<Item>,
    pub quantized: Vec<Item>,
    pub quantized_skipped: Vec<Item>,
}

impl AllItems {
    /// The listed items with their table.
    pub fn listed(&self) -> impl Iterator<Item = (&Item, Section)> {
        let core = self.core.items.iter().map(|i| (i, Section::Core));
        let q = self.quantized.iter().map(|i| (i, Section::Quantized));
        core.chain(q)
            .chain(self.nn.iter().map(|i| (i, Section::Nn)))
    }
}

pub fn all_items(src: &Sources) -> Result<AllItems, Error> {
    let (quantized, quantized_skipped) = quantized_items(&src.core_src)?;
    Ok(AllItems {
        core: core_items(&src.core_src)?,
        nn: nn_items(&src.nn_src)?,
        quantized,
        quantized_skipped,
    })
}

fn render(src: &Sources, items: &AllItems, coverings: &[Covering]) -> String {
    let (core, nn) = (&items.core, &items.nn);
    let core_rows = rows(&core.items, coverings, Section::Core);
    let q_rows = rows(&items.quantized, coverings, Section::Quantized);
    let nn_rows = rows(nn, coverings, Section::Nn);
    let all: Vec<&Row> = core_rows.iter().chain(&q_rows).chain(&nn_rows).collect();
    let fwd = all.iter().filter(|r| !r.by.is_empty()).count();
    let bwd = all
        .iter()
        .filter(|r| r.by.iter().any(|c| c.backward))
        .count();
    let excl = all
        .iter()
        .filter(|r| r.by.is_empty() && r.excluded.is_some())
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
    let nn_files: BTreeSet<&str> = NN_FN_FILES
        .iter()
        .chain(NN_MODULE_FILES)
        .chain(NN_METHODS.iter().map(|(f, _, _)| f))
        .copied()
        .collect();

    let mut o = String::new();
    o.push_str("# What the project checks in candle\n\n");
    o.push_str(
        "Generated by `cargo run -p repro -- coverage` from candle's sources and this project's \
         registries; do not edit (a test fails when this page is stale).\n\n",
    );
    o.push_str(&format!(
        "**{} items** ({} candle-core `Tensor` methods, {} candle-core quantized, {} candle-nn): \
         **{fwd} covered forward**, **{bwd} covered backward**, **{excl} excluded**, **{} not \
         covered**.\n\n",
        all.len(),
        core_rows.len(),
        q_rows.len(),
        nn_rows.len(),
        all.len() - fwd - excl
    ));
    o.push_str(&format!(
        "candle-core {} and candle-nn {} (the versions `cargo metadata` resolves for this \
         workspace). Read: every `src/*.rs` of candle-core (items found in {}) and `{core_dir}/{}`; \
         of candle-nn, {}.\n\n",
        src.core_version,
        src.nn_version,
        core_files
            .iter()
            .map(|f| format!("`{core_dir}/{f}`"))
            .collect::<Vec<_>>()
            .join(", "),
        QUANTIZED_FILE,
        nn_files
            .iter()
            .map(|f| format!("`{nn_dir}/{f}`"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    derivation(&mut o);
    o.push_str("## candle-core: `Tensor` methods\n\n");
    table(&mut o, &core_rows);
    o.push_str("\n## candle-core: quantized (`QTensor`, `QMatMul`)\n\n");
    table(&mut o, &q_rows);
    o.push_str("\n## candle-nn\n\n");
    table(&mut o, &nn_rows);
    excluded_table(&mut o, &all);

    o.push_str("\n## Left out\n\n");
    o.push_str("`Tensor` methods and quantized fns found but not listed above:\n\n| method | reason |\n|---|---|\n");
    let mut by_reason: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let skipped = core.skipped.iter().map(|i| (i, skip_reason(&i.key)));
    let q_skipped = items
        .quantized_skipped
        .iter()
        .map(|i| (i, q_skip_reason(&i.key)));
    for (it, reason) in skipped.chain(q_skipped) {
        let reason = reason.unwrap_or("");
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
    let q_items: Vec<&Item> = items
        .quantized
        .iter()
        .chain(&items.quantized_skipped)
        .collect();
    let mut unmatched = Vec::new();
    for c in coverings.iter().filter(|c| c.sweep) {
        for r in &c.refs {
            let one = std::iter::once(r.clone()).collect();
            let hit = match r {
                Ref::Method(_) => all_items.iter().any(|i| names(r, i, true)),
                Ref::Nn(_) => nn.iter().any(|i| names(r, i, false)),
                Ref::Quantized(p) => {
                    p.starts_with("GgmlDType::")
                        || q_items.iter().any(|i| covers(&one, i, Section::Quantized))
                }
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

/// The excluded items, by entry of `excluded::EXCLUDED`, with the reason.
fn excluded_table(o: &mut String, all: &[&Row]) {
    o.push_str(&format!(
        "\n## Excluded\n\nOut of scope, each with its reason ({} entries of \
         `repro/src/coverage/excluded.rs`; a `*` matches every key it starts). An excluded item \
         that some check calls counts as covered.\n\n| entry | items | reason |\n|---|---|---|\n",
        EXCLUDED.len()
    ));
    for (pattern, reason) in EXCLUDED {
        let hit: Vec<String> = all
            .iter()
            .filter(|r| super::excluded::matches(pattern, &r.item.key))
            .map(|r| format!("`{}`", r.item.key))
            .collect();
        o.push_str(&format!(
            "| `{pattern}` | {} | {reason} |\n",
            hit.join(", ")
        ));
    }
}

/// How the columns are derived.
fn derivation(o: &mut String) {
    o.push_str(
        "## How the columns are derived\n\n\
         - **item**: candle-core: every `pub fn` of an inherent `impl Tensor` block, including the \
         methods candle writes with its own `macro_rules!` (`unary_op!(exp, Exp)`, `binary_op!`, \
         `broadcast_binary_op!`, …); candle-core's quantized API (`quantized/mod.rs`): the public \
         fns of the inherent `impl QTensor` and `impl QMatMul` blocks, and `QMatMul`'s \
         `Module::forward` once per `GgmlDType` variant (`QMatMul::forward[Q4_0]`: each weight \
         dtype has its own kernel); candle-nn: the public free fns of `ops.rs`, `rotary_emb.rs`, \
         `loss.rs`, `conv.rs`, `batch_norm.rs` and `group_norm.rs` (`module::fn`), the variants \
         of `Activation`, the public structs implementing `Module` or `ModuleT` in `ops.rs`, \
         `activation.rs`, `layer_norm.rs`, `linear.rs`, `embedding.rs`, `conv.rs`, \
         `batch_norm.rs`, `group_norm.rs`, and a few methods listed by name \
         (`BatchNorm::forward_train`, every `append` of `kv_cache.rs`, `VarBuilder`'s `get` and \
         `get_unchecked`, which convert to two different dtypes). \
         `#[cfg(test)]` code and non-public fns are left out; so are trait methods (`IndexOp::i`, \
         the `+ - * /` operators) and items inside nested modules.\n\
         - **forward**: `sweep` when an op of the sweep's `OPS` table (`repro/src/sweep/ops.rs`) \
         calls the item — the calls named in the op's `call` string and in the Rust source its \
         `code` writes for every systematic cell; `case` when a suite case (`repro::cases::all()`) \
         calls it — a method call `.name(`, `Tensor::name(`, `candle_nn::…`, `quantized::…` or \
         `Activation::…` in the case file's code (comments, strings and its plain-Rust snippet \
         check left out). A method of a struct counts when its full path is called, or when the \
         struct is named and `.method(` called; `QMatMul::forward[X]` when a `QMatMul` is built, \
         its forward called and `GgmlDType::X` named. `excluded (reason)` marks an item out of \
         scope that nothing covers (see Excluded below).\n\
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
}
