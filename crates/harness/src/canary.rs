//! The canary: before a run trusts a device, a handful of ops with known results (elementwise
//! add, matmul, index_select, a strided copy) must agree with the oracle on it. A device that
//! fails them (a paravirtualised GPU returning zeros, a broken driver) would turn every case into
//! a false "reproduced"; instead every verdict of that run becomes `inconclusive`.

use crate::device::location;
use crate::host::HostTensor;
use crate::observe::{Probe, Stopped};
use crate::oracle;
use crate::variant::{check_variant, Variant};
use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};

/// Set only by tests: makes the canary expect a wrong sum, so the failure path can be exercised
/// on a machine whose devices are all healthy.
pub const SABOTAGE_ENV: &str = "CANDLE_REPRO_TEST_SABOTAGE_CANARY";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CanaryReport {
    /// The devices checked (`cpu`, and the target when it is an accelerator).
    pub devices: Vec<String>,
    pub passed: bool,
    /// One line per failing step: device, op, what went wrong.
    pub failures: Vec<String>,
}

fn canary_steps(p: &mut Probe) -> Result<(), Stopped> {
    let sabotage = std::env::var_os(SABOTAGE_ENV).is_some();
    let a_h = HostTensor::from_fn(DType::F32, &[3, 4], |i| i as f64 - 5.5);
    let b_h = HostTensor::from_fn(DType::F32, &[3, 4], |i| (i * 7 % 5) as f64);
    let a = p.upload("a", &a_h)?;
    let b = p.upload("b", &b_h)?;
    let mut sum = oracle::add(&a_h, &b_h);
    if sabotage {
        if let Ok(s) = sum.as_mut() {
            s.values[0] += 1.0;
        }
    }
    p.step("let s = (&a + &b)?;", &[("a", &a), ("b", &b)], sum, || {
        &a + &b
    })?;
    let w_h = HostTensor::from_fn(DType::F32, &[4, 2], |i| (i % 3) as f64 - 1.0);
    let w = p.upload("w", &w_h)?;
    p.step(
        "let y = a.matmul(&w)?;",
        &[("a", &a), ("w", &w)],
        oracle::matmul(&a_h, &w_h),
        || a.matmul(&w),
    )?;
    let ids_h = HostTensor::new(DType::U32, &[3], vec![2., 0., 2.]);
    let ids = p.upload("ids", &ids_h)?;
    p.step(
        "let r = a.index_select(&ids, 0)?;",
        &[("a", &a), ("ids", &ids)],
        oracle::index_select0(&a_h, &ids_h),
        || a.index_select(&ids, 0),
    )?;
    p.step(
        "let c = a.t()?.contiguous()?;",
        &[("a", &a)],
        oracle::transpose2(&a_h),
        || a.t()?.contiguous(),
    )?;
    Ok(())
}

/// Runs the canary on the CPU and, if it is an accelerator, on the target.
pub fn run(target: &Device) -> CanaryReport {
    let canary = Variant::new("canary", "known-result ops", canary_steps);
    let mut devices = vec![Device::Cpu];
    if !matches!(target, Device::Cpu) {
        devices.push(target.clone());
    }
    let mut failures = Vec::new();
    for d in &devices {
        let mut probe = Probe::new(d);
        let _ = canary_steps(&mut probe);
        let report = check_variant(&canary, probe.into_steps(), None);
        for s in report
            .steps
            .iter()
            .filter(|s| !s.reference_vs_oracle.agrees())
        {
            failures.push(format!(
                "{}: `{}`: {}",
                location(d),
                s.code,
                s.reference_vs_oracle.describe()
            ));
        }
    }
    CanaryReport {
        devices: devices.iter().map(location).collect(),
        passed: failures.is_empty(),
        failures,
    }
}
