//! Mounting one test body per backend (the burn / candle `test_device!` idea): a test run targets
//! the device named by `CANDLE_REPRO_DEVICE` (default `cpu`), and every snapshot gets that
//! backend's suffix, so `name@cpu.snap`, `name@cuda.snap` and `name@metal.snap` sit side by side.

use candle_core::Device;
use harness::{DeviceSpec, DEVICE_ENV};

/// The device this test run targets. A device that cannot be opened fails loudly: a test run
/// that silently fell back to the CPU would bless CPU snapshots under a GPU's name.
pub fn target_device() -> Device {
    let spec: DeviceSpec = std::env::var(DEVICE_ENV)
        .unwrap_or_else(|_| "cpu".into())
        .parse()
        .unwrap_or_else(|e| panic!("{DEVICE_ENV}: {e}"));
    harness::device::open(spec).unwrap_or_else(|e| panic!("{DEVICE_ENV}: {e}"))
}

/// `cpu`, `cuda` or `metal`: the snapshot suffix.
pub fn backend(device: &Device) -> &'static str {
    harness::device::backend_name(device)
}

/// The checkout the tests read their data from: `INSTA_WORKSPACE_ROOT` (insta's own override,
/// for test binaries run away from where they were built), else the workspace they were built in.
pub fn workspace_root() -> std::path::PathBuf {
    std::env::var("INSTA_WORKSPACE_ROOT")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into())
        .into()
}
