//! Running a case's steps on one device and recording what happened, step by step.
//!
//! A step is one candle call written as the user would write it (`code`), the metadata of its
//! inputs, what the oracle says it should return, and what the backend actually returned: a
//! tensor (dtype, shape, strides, offset, values), an error, or a panic.

use crate::device::first_line;
use crate::host::{read_back, HostTensor, TensorMeta};
use crate::oracle::{OracleResult, Rejection};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What the oracle says a step should give.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Expected {
    Tensor(HostTensor),
    Rejected(Rejection),
}

impl From<OracleResult> for Expected {
    fn from(r: OracleResult) -> Self {
        match r {
            Ok(t) => Self::Tensor(t),
            Err(r) => Self::Rejected(r),
        }
    }
}

/// A tensor a backend returned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    #[serde(flatten)]
    pub meta: TensorMeta,
    pub values: Vec<f64>,
}

/// What a backend did with a step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Outcome {
    Tensor(Observed),
    /// candle returned `Err`; the message without any captured backtrace.
    Error {
        message: String,
    },
    /// The call panicked inside candle.
    Panic {
        message: String,
    },
}

impl Outcome {
    pub fn short(&self) -> String {
        match self {
            Outcome::Tensor(o) => format!("{} {:?}", o.meta.dtype.as_str(), o.meta.shape),
            Outcome::Error { .. } => "error".into(),
            Outcome::Panic { .. } => "panic".into(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Input {
    pub name: String,
    #[serde(flatten)]
    pub meta: TensorMeta,
}

#[derive(Clone, Debug, Serialize)]
pub struct Step {
    /// The call as Rust source, e.g. `let idx = idx.broadcast_as((4, 3))?;`.
    pub code: String,
    pub inputs: Vec<Input>,
    pub expected: Expected,
    pub outcome: Outcome,
}

/// Marks that a step failed (already recorded); later steps depend on it and do not run.
#[derive(Debug)]
pub struct Stopped;

/// Records steps on one device.
pub struct Probe<'d> {
    device: &'d Device,
    steps: Vec<Step>,
}

impl<'d> Probe<'d> {
    pub fn new(device: &'d Device) -> Self {
        Self {
            device,
            steps: Vec::new(),
        }
    }

    pub fn device(&self) -> &Device {
        self.device
    }

    pub fn into_steps(self) -> Vec<Step> {
        self.steps
    }

    /// Uploads host data with `Tensor::from_vec` as step `let <name> = Tensor::from_vec(...)`.
    pub fn upload(&mut self, name: &str, host: &HostTensor) -> Result<Tensor, Stopped> {
        let code = format!(
            "let {name} = Tensor::from_vec(/* {} × {} */, {}, &dev)?;",
            host.elem_count(),
            host.dtype.as_str(),
            shape_literal(&host.shape)
        );
        let device = self.device;
        self.step(code, &[], Ok(host.clone()), || host.to_tensor(device))
    }

    /// Runs one call, records it, and returns its tensor for the next steps.
    pub fn step(
        &mut self,
        code: impl Into<String>,
        inputs: &[(&str, &Tensor)],
        expected: OracleResult,
        call: impl FnOnce() -> candle_core::Result<Tensor>,
    ) -> Result<Tensor, Stopped> {
        let inputs = inputs
            .iter()
            .map(|(name, t)| Input {
                name: name.to_string(),
                meta: TensorMeta::of(t),
            })
            .collect();
        let (outcome, tensor) = match catch_unwind(AssertUnwindSafe(call)) {
            Ok(Ok(t)) => match read_back(&t) {
                Ok(h) => (
                    Outcome::Tensor(Observed {
                        meta: TensorMeta::of(&t),
                        values: h.values,
                    }),
                    Some(t),
                ),
                Err(e) => (
                    Outcome::Error {
                        message: format!(
                            "reading the result back failed: {}",
                            first_line(&e.to_string())
                        ),
                    },
                    None,
                ),
            },
            Ok(Err(e)) => (
                Outcome::Error {
                    message: first_line(&e.to_string()),
                },
                None,
            ),
            Err(payload) => (
                Outcome::Panic {
                    message: panic_message(payload.as_ref()),
                },
                None,
            ),
        };
        self.steps.push(Step {
            code: code.into(),
            inputs,
            expected: expected.into(),
            outcome,
        });
        tensor.ok_or(Stopped)
    }
}

/// `(4, 3)` / `4` / `()` as Rust would write a shape argument.
pub fn shape_literal(shape: &[usize]) -> String {
    match shape {
        [] => "()".into(),
        [n] => format!("({n},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The first line of a caught panic's message.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        first_line(s)
    } else if let Some(s) = payload.downcast_ref::<String>() {
        first_line(s)
    } else {
        "panic with a non-string payload".into()
    }
}
