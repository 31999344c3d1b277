//! The harness every binary, test and report of this workspace uses.
//!
//! Data flows one way: device spec → case steps → observations (CPU, target, oracle) → checks →
//! verdict → report. Nothing downstream re-runs or re-decides what upstream already decided.

pub mod bench;
pub mod canary;
pub mod case;
pub mod cli;
pub mod compare;
pub mod cuda_pool;
pub mod device;
pub mod host;
pub mod observe;
pub mod oracle;
pub mod plot;
pub mod report;
pub mod schema;
pub mod timing;
pub mod variant;
pub mod verdict;

pub use case::{run_case, Case, CaseReport, KnownDivergence, Variant};
pub use device::{DeviceSpec, Environment, CANDLE_VERSION, DEVICE_ENV};
pub use host::HostTensor;
pub use observe::{Probe, Stopped};
pub use verdict::Verdict;
