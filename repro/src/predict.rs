//! What Metal will show for every divergence a CPU or CUDA run observed, derived without a Mac.
//! Three rules read the bug file that claims the id and candle's source; a hand prediction in
//! `repro/sweep-known.toml` (`[<id>.predicted.metal]`) takes precedence where someone read the
//! Metal code for the mechanism:
//!
//! 0. **Metal's dispatch.** An id that `repro::metal::ids` derives from Metal's dispatch tables
//!    (a refusal or a kernel its library lacks, on the cells that form the id) shows there.
//! 1. **NaN and ±inf.** An id in the `non-finite` category, or found with NaN/±inf values, is
//!    uncertain on Metal: candle compiles Metal kernels with fast math on by default, under which
//!    NaN handling is not guaranteed (`repro/bugs/metal-fast-math-leaves-nan-results-undefined.md`).
//! 2. **Where the cause lives.** Each quote of the root cause's bug file is placed on a side by
//!    its file (`cpu_backend/`, `cuda_backend/`, `candle-kernels/`, `metal_backend/`, …) or, in a
//!    shared file, by the function around the quoted lines (`cpu_fwd`, `cuda_fwd`, `metal_fwd`):
//!    all quotes in code every backend runs → Metal **shows** it; all in CPU-only code and only the
//!    CPU showed it → it does **not show** there; otherwise → **uncertain** (Metal runs its own
//!    kernel, which the bug file does not read).

use crate::bugs::{Quote, Sources};
use crate::sweep::exec::Category;
use crate::sweep::id::DivergenceId;
use crate::sweep::known::{KnownSet, RootCause};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Shows,
    DoesNotShow,
    Uncertain,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Shows => "shows",
            Outcome::DoesNotShow => "does not show",
            Outcome::Uncertain => "uncertain",
        }
    }
}

/// Where a prediction came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Derivation {
    /// One of the rules above, named.
    Rule(&'static str),
    /// A hand reading in `repro/sweep-known.toml`, with its source and confidence.
    Hand { source: String, confidence: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prediction {
    pub outcome: Outcome,
    pub reason: String,
    pub derivation: Derivation,
}

impl Prediction {
    pub fn mechanical(&self) -> bool {
        matches!(self.derivation, Derivation::Rule(_))
    }
}

/// The side of the code a quote is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    /// Code every backend runs (the op's definition, backprop, a candle-nn module).
    Shared,
    Cpu,
    Cuda,
    Metal,
}

/// The side of `file` from its path alone, when the path decides it.
fn side_of_path(file: &str) -> Option<Side> {
    if file.contains("/cpu_backend/") || file.contains("/src/cpu/") {
        Some(Side::Cpu)
    } else if file.contains("/cuda_backend/") || file.starts_with("candle-kernels/") {
        Some(Side::Cuda)
    } else if file.contains("/metal_backend/") || file.starts_with("candle-metal-kernels/") {
        Some(Side::Metal)
    } else {
        None
    }
}

/// The side of a quote: by its path, else by the name of the function its first line is in.
pub fn side_of(q: &Quote, sources: &Sources) -> Result<Side, String> {
    if let Some(s) = side_of_path(&q.file) {
        return Ok(s);
    }
    let (first, _) = q.range()?;
    let path = sources.path(&q.file)?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", q.file))?;
    let enclosing = enclosing_fns(&text, first);
    let side = |prefix: &str| enclosing.iter().any(|f| f.starts_with(prefix));
    Ok(if side("cpu") {
        Side::Cpu
    } else if side("cuda") {
        Side::Cuda
    } else if side("metal") {
        Side::Metal
    } else {
        Side::Shared
    })
}

/// The functions around line `first` (1-based) of `text`, outermost first.
fn enclosing_fns(text: &str, first: usize) -> Vec<String> {
    // The functions around the quoted line: a brace count from the top of the file, each `fn`
    // opening at its first `{` (a signature may span lines; a bodiless one ends at `;`). Braces
    // inside strings come in pairs in this code, so the count holds.
    let mut depth = 0usize;
    let mut stack: Vec<(String, usize)> = Vec::new();
    let mut pending: Option<String> = None;
    for l in text.lines().take(first.saturating_sub(1)) {
        let t = l.trim_start();
        let t = ["pub(crate) ", "pub(super) ", "pub "]
            .iter()
            .find_map(|p| t.strip_prefix(p))
            .unwrap_or(t);
        if let Some(r) = t.strip_prefix("fn ") {
            pending = Some(r.split(['(', '<']).next().unwrap_or("").to_string());
        }
        for c in l.chars() {
            match c {
                '{' => {
                    depth += 1;
                    if let Some(name) = pending.take() {
                        stack.push((name, depth));
                    }
                }
                '}' => {
                    stack.retain(|(_, d)| *d < depth);
                    depth = depth.saturating_sub(1);
                }
                ';' if pending.is_some() && !l.contains('{') => pending = None,
                _ => {}
            }
        }
    }
    stack.into_iter().map(|(n, _)| n).collect()
}

/// Whether an id's cells hold NaN or ±inf, or its category is about them.
fn nan_dependent(id: &str) -> bool {
    use crate::sweep::cell::Values;
    id.parse::<DivergenceId>().is_ok_and(|d| {
        d.category == Category::NonFinite
            || matches!(
                d.values,
                Some(Values::Nan(_) | Values::PosInf(_) | Values::NegInf(_))
            )
    })
}

/// The prediction from where a root cause's quotes are.
fn from_sides(sides: &[(String, Side)], observed_on: &[String]) -> Prediction {
    let files = |want: &dyn Fn(Side) -> bool| {
        let mut f: Vec<&str> = sides
            .iter()
            .filter(|(_, s)| want(*s))
            .map(|(f, _)| f.as_str())
            .collect();
        f.dedup();
        f.join(", ")
    };
    let all = |s: Side| sides.iter().all(|(_, x)| *x == s);
    if !sides.is_empty() && all(Side::Shared) {
        Prediction {
            outcome: Outcome::Shows,
            reason: format!(
                "the cause is in code every backend runs ({})",
                files(&|_| true)
            ),
            derivation: Derivation::Rule("shared code"),
        }
    } else if !sides.is_empty() && all(Side::Cpu) && observed_on.iter().all(|b| b == "cpu") {
        Prediction {
            outcome: Outcome::DoesNotShow,
            reason: format!(
                "the cause is in CPU-only code ({}), which Metal does not run",
                files(&|_| true)
            ),
            derivation: Derivation::Rule("CPU-only code"),
        }
    } else {
        Prediction {
            outcome: Outcome::Uncertain,
            reason: format!(
                "the cause is in backend code ({}); Metal runs its own, which its bug file does not read",
                files(&|s| s != Side::Shared)
            ),
            derivation: Derivation::Rule("backend code"),
        }
    }
}

/// A Metal prediction for every id a run observed on the CPU or CUDA.
pub fn observed_ids(
    known: &KnownSet,
    causes: &BTreeMap<String, RootCause>,
    sources: &Sources,
    derived: &BTreeMap<String, crate::metal::ids::Derived>,
) -> Result<BTreeMap<String, Prediction>, String> {
    let owner: BTreeMap<&str, &RootCause> = causes
        .values()
        .flat_map(|r| r.ids.iter().map(move |id| (id.as_str(), r)))
        .collect();
    let mut sides_of: BTreeMap<String, Vec<(String, Side)>> = BTreeMap::new();
    for (key, r) in causes {
        let mut v = Vec::new();
        for q in &r.bug.front.quote {
            v.push((q.file.clone(), side_of(q, sources)?));
        }
        sides_of.insert(key.clone(), v);
    }
    let key_of: BTreeMap<&str, &str> = causes
        .iter()
        .flat_map(|(k, r)| r.ids.iter().map(move |id| (id.as_str(), k.as_str())))
        .collect();
    let mut out = BTreeMap::new();
    for (id, k) in known
        .entries
        .iter()
        .filter(|(_, k)| k.observed && k.backends.iter().any(|b| b == "cpu" || b == "cuda"))
    {
        let p = if let Some(h) = k.predicted.get("metal") {
            let refuted = h
                .outcome
                .as_deref()
                .is_some_and(|o| o.starts_with("refuted"));
            Prediction {
                outcome: if refuted {
                    Outcome::DoesNotShow
                } else {
                    Outcome::Shows
                },
                reason: h.cell.clone(),
                derivation: Derivation::Hand {
                    source: h.source.clone(),
                    confidence: h.confidence.clone(),
                },
            }
        } else if let Some(d) = derived.get(id) {
            Prediction {
                outcome: Outcome::Shows,
                reason: format!("Metal's dispatch: {} ({})", d.outcome, d.cell),
                derivation: Derivation::Rule("dispatch tables"),
            }
        } else if nan_dependent(id) {
            Prediction {
                outcome: Outcome::Uncertain,
                reason: "NaN/±inf handling is not guaranteed under Metal's default fast math (metal-fast-math-leaves-nan-results-undefined)".into(),
                derivation: Derivation::Rule("fast math"),
            }
        } else if owner.contains_key(id.as_str()) {
            from_sides(&sides_of[key_of[id.as_str()]], &k.backends)
        } else {
            Prediction {
                outcome: Outcome::Uncertain,
                reason: "no bug file claims it".into(),
                derivation: Derivation::Rule("unclaimed"),
            }
        };
        out.insert(id.clone(), p);
    }
    Ok(out)
}

/// The predictions the pages print, with the pinned candle's sources from cargo's registry.
pub fn for_pages(
    known: &KnownSet,
    causes: &BTreeMap<String, RootCause>,
) -> Result<BTreeMap<String, Prediction>, crate::error::Error> {
    let sources = Sources::pinned()?;
    let derived = crate::metal::ids::derived().map_err(crate::error::Error::BadInput)?;
    observed_ids(known, causes, &sources, derived).map_err(crate::error::Error::BadInput)
}

/// The Metal-only divergences: those the dispatch tables predict (`repro::metal::ids`) and
/// those read by hand for ids no run has shown, as a line of counts and a table.
pub fn metal_only_section(known: &KnownSet) -> Result<String, crate::error::Error> {
    let derived = crate::metal::ids::derived().map_err(crate::error::Error::BadInput)?;
    let hand: Vec<&String> = known
        .entries
        .iter()
        .filter(|(_, k)| !k.observed && k.predicted.contains_key("metal"))
        .map(|(id, _)| id)
        .collect();
    let new: Vec<&crate::metal::ids::Derived> = derived
        .values()
        .filter(|d| !known.entries.get(&d.id).is_some_and(|k| k.observed))
        .collect();
    let agree = hand.iter().filter(|id| derived.contains_key(**id)).count();
    let mut md = format!(
        "{} Metal-only divergences predicted: {} derived from Metal's dispatch tables (`repro/src/metal/`: every cell the sweep plans, through the kernel names candle requests and the kernels its `.metal` files instantiate; {agree} of them also read by hand), and {} read by hand only ({}: wrong values and backward passes, which the dispatch does not show). The derivation also predicts {} ids the CPU or CUDA already showed, the same id on Metal.\n\n| Metal-only id | first cell | Metal | also by hand |\n|---|---|---|---|\n",
        new.len() + hand.len() - agree,
        new.len(),
        hand.len() - agree,
        hand.iter()
            .filter(|id| !derived.contains_key(**id))
            .map(|id| format!("`{id}`"))
            .collect::<Vec<_>>()
            .join(", "),
        derived.len() - new.len(),
    );
    for d in &new {
        md.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            d.id,
            d.cell,
            d.outcome.to_string().replace('|', "\\|"),
            if hand.contains(&&d.id) { "yes" } else { "" }
        ));
    }
    Ok(md)
}

/// The Metal column of STATUS.md for a rule's prediction.
pub fn cell(p: &Prediction) -> String {
    match &p.derivation {
        Derivation::Rule(r) => format!("predicted: {} ({r})", p.outcome.as_str()),
        Derivation::Hand { confidence, .. } => {
            format!(
                "predicted: {} ({confidence} confidence)",
                p.outcome.as_str()
            )
        }
    }
}

/// Counts per rule and outcome, as a Markdown table.
pub fn rules_table(p: &BTreeMap<String, Prediction>) -> String {
    let mut by: BTreeMap<(String, Outcome), usize> = BTreeMap::new();
    for x in p.values() {
        let rule = match &x.derivation {
            Derivation::Rule(r) => r.to_string(),
            Derivation::Hand { .. } => "read by hand".to_string(),
        };
        *by.entry((rule, x.outcome)).or_default() += 1;
    }
    let mut md = String::from("| derived from | Metal | ids |\n|---|---|---|\n");
    for ((rule, o), n) in by {
        md.push_str(&format!("| {rule} | {} | {n} |\n", o.as_str()));
    }
    md
}

/// One line of counts: how many predictions, by outcome, and how many came from the rules.
pub fn counts_line(p: &BTreeMap<String, Prediction>) -> String {
    let n = |o: Outcome| p.values().filter(|x| x.outcome == o).count();
    let mech = p.values().filter(|x| x.mechanical()).count();
    format!(
        "{} Metal predictions for the ids observed on the CPU or CUDA: {} shows, {} does not show, {} uncertain; {} derived mechanically (`repro/src/predict.rs`), {} read by hand (`repro/sweep-known.toml`).",
        p.len(),
        n(Outcome::Shows),
        n(Outcome::DoesNotShow),
        n(Outcome::Uncertain),
        mech,
        p.len() - mech
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_side_of_a_quote_follows_its_path_or_its_function() {
        assert_eq!(
            side_of_path("candle-core/src/cpu_backend/mod.rs"),
            Some(Side::Cpu)
        );
        assert_eq!(
            side_of_path("candle-kernels/src/reduce.cu"),
            Some(Side::Cuda)
        );
        assert_eq!(side_of_path("candle-core/src/backprop.rs"), None);
        let on = |b: &[&str]| b.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let shared = [("a.rs".to_string(), Side::Shared)];
        assert_eq!(
            from_sides(&shared, &on(&["cpu", "cuda"])).outcome,
            Outcome::Shows
        );
        let cpu = [("a.rs".to_string(), Side::Cpu)];
        assert_eq!(
            from_sides(&cpu, &on(&["cpu"])).outcome,
            Outcome::DoesNotShow
        );
        // CPU quotes only, but CUDA shows it too: CUDA's code was not quoted, so unknown.
        assert_eq!(
            from_sides(&cpu, &on(&["cpu", "cuda"])).outcome,
            Outcome::Uncertain
        );
        let mixed = [
            ("a.rs".to_string(), Side::Shared),
            ("b.cu".to_string(), Side::Cuda),
        ];
        assert_eq!(
            from_sides(&mixed, &on(&["cuda"])).outcome,
            Outcome::Uncertain
        );
        assert!(nan_dependent("max-keepdim-fwd-non-finite-nan-last"));
        let src = "impl Op {\n    fn cpu_fwd(\n        &self,\n    ) -> R {\n        fn inner<T>(\n            x: T,\n        ) -> R {\n            bail!(\"contiguous\")\n        }\n    }\n    fn name(&self);\n    fn shared() {\n        x\n    }\n}\n";
        assert_eq!(enclosing_fns(src, 8), ["cpu_fwd", "inner"]);
        assert_eq!(enclosing_fns(src, 13), ["shared"]);
        assert!(!nan_dependent("sum-keepdim-fwd-wrong-result-long"));
    }
}
