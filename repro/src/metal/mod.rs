//! What candle 0.11.1's Metal backend does with each sweep cell, predicted from its sources on a
//! machine without a Mac: which kernels the call asks for, whether the `.metal` library
//! instantiates them, or which error it raises instead.
//!
//! Derived mechanically (parsed at run time from cargo's registry): the kernels each `.metal`
//! file instantiates (`kernels`: the files preprocessed by `cpp`), the dtype coverage of every
//! dispatch `match` (its arms, in order), the kernel names they pick (literals, `ops!` macro
//! constants, `format!`s), the error text of the arms and guards that refuse, and the library
//! each `call_*` loads from. By hand: where each match and guard is (`tables`), which candle
//! functions each sweep op's forward call goes through (`routes`, one line per op), and the
//! crate-private layout tests that pick a contiguous or strided branch (`layouts`).

pub mod dispatch;
pub mod ids;
pub mod kernels;
pub mod layouts;
pub mod routes;
pub mod rust_src;
pub mod steps;
pub mod tables;
pub mod unmodelled;

use crate::sweep::cell::{self, Cell};
use crate::sweep::ops::{Op, OPS};
use candle_core::Device;
use dispatch::{Dispatch, Found};
use std::fmt;
use std::sync::OnceLock;

/// What Metal does with a call.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetalOutcome {
    /// Every kernel the call asks for is instantiated: their names, in order (empty when it
    /// runs none: a view, a clone, a blit copy).
    Kernel(Vec<String>),
    /// The call asks for a kernel its library does not instantiate: `load_pipeline` fails.
    NotInstantiated(String),
    /// No kernel: the error raised (a `bail!`'s text, an error variant).
    Refuses(String),
    /// Not derivable mechanically: why.
    Unknown(String),
}

impl MetalOutcome {
    /// `kernel`, `not-instantiated`, `refuses` or `unknown`.
    pub fn class(&self) -> &'static str {
        match self {
            MetalOutcome::Kernel(_) => "kernel",
            MetalOutcome::NotInstantiated(_) => "not-instantiated",
            MetalOutcome::Refuses(_) => "refuses",
            MetalOutcome::Unknown(_) => "unknown",
        }
    }

    pub fn is_kernel(&self) -> bool {
        matches!(self, MetalOutcome::Kernel(_))
    }
}

impl fmt::Display for MetalOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetalOutcome::Kernel(names) if names.is_empty() => f.write_str("no kernel (view/blit)"),
            MetalOutcome::Kernel(names) => write!(f, "{}", names.join(", ")),
            MetalOutcome::NotInstantiated(n) => write!(f, "not instantiated: {n}"),
            MetalOutcome::Refuses(e) => write!(f, "refuses: {e}"),
            MetalOutcome::Unknown(w) => write!(f, "unknown: {w}"),
        }
    }
}

/// The parsed sources (loaded once per process by `predict`).
pub struct Metal {
    pub dispatch: Dispatch,
}

impl Metal {
    pub fn load() -> Result<Metal, String> {
        Ok(Metal {
            dispatch: Dispatch::load()?,
        })
    }

    /// The outcome of a cell's forward call on Metal.
    pub fn predict(&self, op: &Op, cell: &Cell) -> MetalOutcome {
        let Some(route) = routes::route(op.name) else {
            return MetalOutcome::Unknown(format!("no route for op `{}`", op.name));
        };
        let ctx = match context(op, cell) {
            Ok(c) => c,
            Err(e) => return MetalOutcome::Unknown(format!("inputs: {e}")),
        };
        match route(&ctx) {
            Ok(steps) => self.run(&steps),
            Err(e) => MetalOutcome::Unknown(e),
        }
    }

    /// Resolves the steps in order; the first that finds no kernel decides.
    pub fn run(&self, steps: &[steps::Step]) -> MetalOutcome {
        let mut names = Vec::new();
        for s in steps {
            for found in steps::resolve(&self.dispatch, s) {
                match found {
                    Found::Kernel { name, .. } => names.push(name),
                    Found::NotInstantiated { name, .. } => {
                        return MetalOutcome::NotInstantiated(name)
                    }
                    Found::Refuses(e) => return MetalOutcome::Refuses(e),
                    Found::Unknown(w) => return MetalOutcome::Unknown(w),
                }
            }
        }
        MetalOutcome::Kernel(names)
    }
}

/// The cell's inputs on the CPU, in its layouts (the values are the sweep's own).
fn context(op: &Op, cell: &Cell) -> Result<routes::Ctx, String> {
    let inputs = crate::sweep::exec::prepare(op, cell);
    let t = inputs
        .iter()
        .zip(&cell.layouts)
        .map(|(i, l)| cell::materialize(&i.host, *l, &Device::Cpu))
        .collect::<candle_core::Result<Vec<_>>>()
        .map_err(|e| e.to_string())?;
    Ok(routes::Ctx {
        dtype: cell.dtype(),
        aux: cell.aux(),
        variant: cell.variant,
        t,
    })
}

/// The sources parsed once for the process (`Err`: why they could not be).
pub fn shared() -> Result<&'static Metal, String> {
    static METAL: OnceLock<Result<Metal, String>> = OnceLock::new();
    METAL
        .get_or_init(Metal::load)
        .as_ref()
        .map_err(Clone::clone)
}

/// What Metal does with a cell's forward call (`Unknown` when the sources cannot be read).
pub fn predict(op: &Op, cell: &Cell) -> MetalOutcome {
    match shared() {
        Ok(m) => m.predict(op, cell),
        Err(e) => MetalOutcome::Unknown(format!("candle's sources: {e}")),
    }
}

/// One op × dtype (× aux dtype) of the sweep: the outcome of its all-contiguous cell, and each
/// other outcome its cells meet, with the first cell (layouts, variant) meeting it.
#[derive(Clone, Debug)]
pub struct Row {
    pub op: &'static str,
    pub dtype: String,
    pub aux: Option<String>,
    pub contiguous: MetalOutcome,
    pub others: Vec<(String, MetalOutcome)>,
}

impl Row {
    pub fn label(&self) -> String {
        match &self.aux {
            Some(a) => format!("{} {}/{a}", self.op, self.dtype),
            None => format!("{} {}", self.op, self.dtype),
        }
    }

    /// Every outcome of the row, the contiguous one first.
    pub fn outcomes(&self) -> impl Iterator<Item = &MetalOutcome> {
        std::iter::once(&self.contiguous).chain(self.others.iter().map(|(_, o)| o))
    }
}

/// Every op × dtype × aux dtype the sweep runs (its cells planned with `seed`, no random ones),
/// with Metal's outcomes.
pub fn summary(metal: &Metal, seed: u64) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    for op in OPS {
        for cell in crate::sweep::plan(op, seed, 0) {
            let outcome = metal.predict(op, &cell);
            let at = rows
                .iter()
                .position(|r| r.op == op.name && r.dtype == cell.dtype && r.aux == cell.aux);
            let row = match at {
                Some(i) => &mut rows[i],
                None => {
                    rows.push(Row {
                        op: op.name,
                        dtype: cell.dtype.clone(),
                        aux: cell.aux.clone(),
                        contiguous: outcome.clone(),
                        others: Vec::new(),
                    });
                    continue;
                }
            };
            if outcome != row.contiguous && !row.others.iter().any(|(_, o)| *o == outcome) {
                row.others.push((describe(op, &cell), outcome));
            }
        }
    }
    rows
}

/// A cell's layouts and variant, for a summary line: `x transposed (dim 1)`.
fn describe(op: &Op, cell: &Cell) -> String {
    let layouts: Vec<&str> = cell.layouts.iter().map(|l| l.as_str()).collect();
    let variant = op.variants.get(cell.variant).copied().unwrap_or("-");
    let class = if cell.values.is_plain() {
        String::new()
    } else {
        format!(", {}", cell.values.slug())
    };
    format!("[{}] {variant}{class}", layouts.join(", "))
}

/// The summary as text, one row per line (other layouts' outcomes indented under it).
pub fn render(rows: &[Row]) -> String {
    let mut out = String::new();
    for r in rows {
        out.push_str(&format!("{:<34} {}\n", r.label(), r.contiguous));
        for (cell, o) in &r.others {
            out.push_str(&format!("{:<34}   {cell}: {o}\n", ""));
        }
    }
    out
}
