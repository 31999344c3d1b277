//! What a cell's run records and a child hands the parent: each backend's outcome (`Obs`), the
//! findings it leads to (`Finding`, `Category`), the evidence a report shows (`Evidence`) and
//! whether that evidence says the device context is poisoned.

use crate::sweep::cell::{self, Layout};
use harness::host::HostTensor;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What one backend did with one pass of a cell.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Obs {
    Values {
        dtype: String,
        shape: Vec<usize>,
        #[serde(with = "float_list")]
        values: Vec<f64>,
    },
    Error {
        message: String,
    },
    Panic {
        message: String,
    },
}

impl Obs {
    pub(super) fn values(h: HostTensor) -> Self {
        Obs::Values {
            dtype: h.dtype.as_str().to_string(),
            shape: h.shape,
            values: h.values,
        }
    }

    pub fn short(&self) -> String {
        match self {
            Obs::Values {
                dtype,
                shape,
                values,
            } => {
                let v: Vec<String> = values.iter().take(12).map(|x| format!("{x}")).collect();
                let more = if values.len() > 12 { ", …" } else { "" };
                format!("{dtype} {shape:?} [{}{more}]", v.join(", "))
            }
            Obs::Error { message } => format!("error: {message}"),
            Obs::Panic { message } => format!("panic: {message}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// Values (or dtype, or shape) differ from the oracle's.
    WrongResult,
    /// A call within the op's contract fails on the backend.
    Unimplemented,
    /// A call the contract forbids succeeds, or two backends refuse one call differently.
    ErrorMismatch,
    /// The backend panicked or the process died.
    Crash,
    /// Values differ from the oracle's where an input holds NaN or ±inf. candle documents no
    /// convention for these; the expectation is PyTorch's (the op's formula in IEEE arithmetic,
    /// NaN propagating through max, min, argmax, argmin, relu and clamp), kept apart so the
    /// convention can be argued separately from the arithmetic.
    NonFinite,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::WrongResult => "wrong-result",
            Category::Unimplemented => "unimplemented",
            Category::ErrorMismatch => "error-mismatch",
            Category::Crash => "crash",
            Category::NonFinite => "non-finite",
        }
    }
}

/// One divergence seen in one cell: which pass, what kind, on which backends, and why.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Finding {
    /// `forward`, or `backward <role>` for the gradient of one input.
    pub pass: String,
    pub category: Category,
    pub backends: Vec<String>,
    /// backend → what it did against what the oracle says.
    pub detail: BTreeMap<String, String>,
}

/// One input as a report shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvidenceInput {
    pub role: String,
    pub dtype: String,
    pub shape: Vec<usize>,
    /// The values, or their first `KEPT` when there are more than `EVIDENCE_LIMIT`.
    #[serde(with = "float_list")]
    pub values: Vec<f64>,
    pub layout: Layout,
}

/// Evidence keeps at most this many values of one tensor in full, and none of a long-row cell
/// (its rows are regenerated from the cell, not stored); beyond it, the first `KEPT`.
pub const EVIDENCE_LIMIT: usize = 4096;
pub const KEPT: usize = 16;

pub(super) fn compact(values: &mut Vec<f64>, long_row: bool) {
    if values.len() > EVIDENCE_LIMIT || long_row && values.len() > KEPT {
        values.truncate(KEPT);
    }
}

/// Values as a report's table writes them: `1, 2.5, NaN`, with `, …` where evidence kept only
/// the first of `total`.
pub fn values_text(values: &[f64], total: usize) -> String {
    if values.len() < total && cell::is_long_row(values, KEPT) {
        return format!("(i mod 16)/16 for i in 0..{total}");
    }
    let v: Vec<String> = values.iter().map(|x| format!("{x}")).collect();
    let more = if values.len() < total { ", …" } else { "" };
    format!("{}{more}", v.join(", "))
}

/// Whether two recorded values are the same: NaN matches NaN, others within `1e-6` relative.
pub fn same_value(x: f64, y: f64) -> bool {
    x == y || x.is_nan() && y.is_nan() || (x - y).abs() <= 1e-6 * y.abs().max(1.0)
}

/// JSON has no NaN or infinity (serde_json writes `null` and cannot read it back): these are
/// written as the strings `"NaN"`, `"inf"` and `"-inf"`, every other value as a number.
mod float_list {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Float {
        Number(f64),
        Word(String),
    }

    pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|&x| {
            if x.is_finite() {
                Float::Number(x)
            } else {
                Float::Word(format!("{x}"))
            }
        }))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Vec::<Float>::deserialize(d)?
            .into_iter()
            .map(|f| match f {
                Float::Number(x) => Ok(x),
                Float::Word(w) => w.parse().map_err(serde::de::Error::custom),
            })
            .collect()
    }
}

/// Everything a report needs to show for one cell.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Evidence {
    pub inputs: Vec<EvidenceInput>,
    pub reference: BTreeMap<String, String>,
    pub observed: BTreeMap<String, BTreeMap<String, Obs>>,
    /// The weights of the loss `sum(out * w)` whose gradient the backward pass checks.
    pub loss_weights: Option<Vec<f64>>,
}

/// Whether a backend reported an error that leaves its context unusable (a CUDA device-side
/// assert or illegal address): every later call in the process would fail, so the process
/// must end after this cell.
pub fn is_poisoned(e: &Evidence) -> bool {
    e.observed
        .values()
        .flat_map(|m| m.values())
        .any(|o| match o {
            Obs::Error { message } => [
                "CUDA_ERROR_ASSERT",
                "ILLEGAL_ADDRESS",
                "LAUNCH_FAILED",
                "device-side assert",
            ]
            .iter()
            .any(|p| message.contains(p)),
            _ => false,
        })
}
