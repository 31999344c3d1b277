//! The op-consistency sweep, one named test per op of `repro::sweep::ops::OPS` (the registry;
//! no list is kept here). On the CPU each op's divergences (against the oracle) are snapshotted
//! as `sweep_<op>@cpu.snap` and must be exactly the manifest's CPU entries for that op, so the
//! snapshot and `repro/sweep-known.toml` cannot drift apart. On an accelerator a device-side
//! assert in one cell poisons the context for every later call in the process, so each test
//! runs `repro sweep --ops <op>` as a child (process isolation, a per-cell deadline) and
//! requires its exit 0: every divergence known, every known one still there, the op finished.

use backend_tests::{backend, target_device};
use candle_core::Device;
use libtest_mimic::{Arguments, Failed, Trial};
use repro::sweep::{known::KnownSet, ops, sweep_in_process};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn manifest_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(repro::sweep::known::DEFAULT_PATH)
}

/// The op a divergence id belongs to: the longest op name that prefixes it.
fn op_of(id: &str) -> Option<&'static str> {
    ops::OPS
        .iter()
        .filter(|o| id.starts_with(&format!("{}-", o.name.replace('_', "-"))))
        .max_by_key(|o| o.name.len())
        .map(|o| o.name)
}

fn sweep_on_cpu(op: &'static ops::Op) -> Result<(), Failed> {
    let cpu = Device::Cpu;
    let seen: BTreeMap<String, BTreeSet<String>> =
        sweep_in_process(op, &[("cpu".to_string(), &cpu)]);
    let lines: Vec<String> = seen
        .iter()
        .map(|(id, b)| {
            format!(
                "{id} on {}",
                b.iter().cloned().collect::<Vec<_>>().join("+")
            )
        })
        .collect();
    insta::with_settings!({ snapshot_suffix => "cpu", prepend_module_to_snapshot => false, snapshot_path => "snapshots/sweep" }, {
        insta::assert_yaml_snapshot!(format!("sweep_{}", op.name), lines);
    });
    // The manifest's observed CPU entries for this op are exactly what the sweep shows.
    let known = KnownSet::load(&manifest_path()).map_err(Failed::from)?;
    let expected: BTreeSet<&String> = known
        .entries
        .iter()
        .filter(|(id, k)| {
            k.observed && k.backends.iter().any(|b| b == "cpu") && op_of(id) == Some(op.name)
        })
        .map(|(id, _)| id)
        .collect();
    let shown: BTreeSet<&String> = seen.keys().collect();
    if expected != shown {
        return Err(format!(
            "{}: the sweep shows {shown:?} on the cpu, the manifest lists {expected:?}",
            op.name
        )
        .into());
    }
    Ok(())
}

/// The `repro` binary: `CANDLE_REPRO_BIN`, else beside this test's own directory (cargo puts
/// test executables in `target/<profile>/deps/` and binaries one level up).
fn repro_bin() -> Result<PathBuf, Failed> {
    if let Ok(p) = std::env::var("CANDLE_REPRO_BIN") {
        return Ok(p.into());
    }
    let exe = std::env::current_exe()?;
    let beside = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("repro"))
        .filter(|p| p.is_file());
    beside.ok_or_else(|| {
        "no repro binary beside this test; build it (`cargo build -p repro`) or set CANDLE_REPRO_BIN"
            .into()
    })
}

fn sweep_on_device(op: &'static ops::Op, device: &str) -> Result<(), Failed> {
    let dir = std::env::temp_dir().join(format!("sweep-test-{}-{}", std::process::id(), op.name));
    let out = std::process::Command::new(repro_bin()?)
        .args([
            "sweep",
            "--device",
            device,
            "--ops",
            op.name,
            "--report-dir",
        ])
        .arg(&dir)
        .arg("--manifest")
        .arg(manifest_path())
        .arg("--repro-dir")
        .arg(dir.join("repros"))
        .output()?;
    let _ = std::fs::remove_dir_all(&dir);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "repro sweep --device {device} --ops {} {}:\n{}{}",
            op.name,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into())
    }
}

fn no_stale_sweep_snapshots() -> Result<(), Failed> {
    let root =
        std::env::var("INSTA_WORKSPACE_ROOT").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let dir = Path::new(&root).join("tests/snapshots/sweep");
    for entry in std::fs::read_dir(&dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let op = name
            .strip_prefix("sweep_")
            .and_then(|n| n.split('@').next());
        if op.is_none_or(|op| ops::find(op).is_none()) {
            return Err(format!("stale snapshot {name}: no such swept op").into());
        }
    }
    Ok(())
}

/// Runs a test body, turning a panic (an insta snapshot mismatch) into a failure.
fn guarded(f: impl FnOnce() -> Result<(), Failed>) -> Result<(), Failed> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|p| Err(harness::observe::panic_message(&*p).into()))
}

fn main() {
    let args = Arguments::from_args();
    let target = target_device();
    let spec = std::env::var(harness::DEVICE_ENV).unwrap_or_else(|_| "cpu".into());
    let mut trials: Vec<Trial> = ops::OPS
        .iter()
        .map(|op| {
            let name = format!("sweep::{}@{}", op.name, backend(&target));
            if target.is_cpu() {
                Trial::test(name, move || guarded(|| sweep_on_cpu(op)))
            } else {
                let spec = spec.clone();
                Trial::test(name, move || guarded(|| sweep_on_device(op, &spec)))
            }
        })
        .collect();
    trials.push(Trial::test("no_stale_sweep_snapshots", || {
        guarded(no_stale_sweep_snapshots)
    }));
    libtest_mimic::run(&args, trials).exit();
}
