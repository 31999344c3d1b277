//! Mounting one test body per backend (the burn / candle `test_device!` idea): a test run targets
//! the device named by `CANDLE_REPRO_DEVICE` (default `cpu`), and every snapshot gets that
//! backend's suffix, so `name@cpu.snap`, `name@cuda.snap` and `name@metal.snap` sit side by side.

use candle_core::Device;

/// The device this test run targets (`CANDLE_REPRO_DEVICE`, default `cpu`; fails loudly).
pub fn target_device() -> Device {
    harness::device::test_target()
}

/// Runs a test body, turning a panic (an insta snapshot mismatch) into a failure.
pub fn guarded(
    f: impl FnOnce() -> Result<(), libtest_mimic::Failed>,
) -> Result<(), libtest_mimic::Failed> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|p| Err(harness::observe::panic_message(&*p).into()))
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
