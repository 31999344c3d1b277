//! The op-consistency sweep, one named test per op of `repro::sweep::ops::OPS` (the registry;
//! no list is kept here). On the CPU each op's divergences (against the oracle) must be exactly
//! the manifest's CPU entries for that op: the manifest, written by `repro sweep --bless`, is the
//! one record of what runs observed (no snapshot repeats it). On an accelerator a device-side
//! assert in one cell poisons the context for every later call in the process, so each test
//! runs `repro sweep --ops <op>` as a child (process isolation, a per-cell deadline) and
//! requires its exit 0: every divergence known, every known one still there, the op finished.

use backend_tests::{backend, guarded, target_device, workspace_root};
use candle_core::Device;
use libtest_mimic::{Arguments, Failed, Trial};
use repro::sweep::{known::KnownSet, ops, sweep_in_process};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn manifest_path() -> PathBuf {
    workspace_root().join(repro::sweep::known::DEFAULT_PATH)
}

fn sweep_on_cpu(op: &'static ops::Op) -> Result<(), Failed> {
    let cpu = Device::Cpu;
    let seen: BTreeMap<String, BTreeSet<String>> =
        sweep_in_process(op, &[("cpu".to_string(), &cpu)]);
    // The manifest's observed CPU entries for this op are exactly what the sweep shows.
    let known = KnownSet::load(&manifest_path()).map_err(Failed::from)?;
    let expected: BTreeSet<&String> = known
        .entries
        .iter()
        .filter(|(id, k)| {
            k.observed
                && k.backends.iter().any(|b| b == "cpu")
                && ops::op_of(id).as_deref() == Some(op.name)
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

/// Every observed divergence has its standalone repro, and every repro a divergence.
fn one_repro_per_divergence() -> Result<(), Failed> {
    let known = KnownSet::load(&manifest_path())?;
    let want: BTreeSet<String> = known
        .entries
        .iter()
        .filter(|(_, k)| k.observed)
        .map(|(id, _)| repro::sweep::run::repro_file_name(id))
        .collect();
    let mut have = BTreeSet::new();
    for entry in std::fs::read_dir(workspace_root().join("repro/sweep-repros/src/bin"))? {
        have.insert(entry?.file_name().to_string_lossy().into_owned());
    }
    if want != have {
        return Err(format!(
            "repros without a divergence: {:?}; divergences without a repro: {:?}",
            have.difference(&want).collect::<Vec<_>>(),
            want.difference(&have).collect::<Vec<_>>()
        )
        .into());
    }
    Ok(())
}

/// Every observed divergence and every suite case is claimed by exactly one bug file in
/// `repro/bugs/`, and every claim is an observed divergence or a case.
fn one_root_cause_per_divergence() -> Result<(), Failed> {
    let root = &workspace_root();
    let causes =
        repro::sweep::known::load_root_causes(&root.join(repro::sweep::known::ROOT_CAUSES_PATH))?;
    let known = KnownSet::load(&manifest_path())?;
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    for (key, r) in &causes {
        for id in &r.ids {
            if let Some(other) = owner.insert(id, key) {
                return Err(format!("{id} is claimed by two bug files: {other} and {key}").into());
            }
            let exists = match id.strip_prefix("case:") {
                Some(case) => repro::cases::all().iter().any(|c| c.name == case),
                None => known.entries.get(id.as_str()).is_some_and(|k| k.observed),
            };
            if !exists {
                return Err(format!(
                    "repro/bugs/{key}.md claims {id}, which is no observed divergence or case"
                )
                .into());
            }
        }
    }
    for (id, _) in known.entries.iter().filter(|(_, k)| k.observed) {
        if !owner.contains_key(id.as_str()) {
            return Err(format!(
                "{id} is observed but no bug file claims it: add it to the `claims` of its root cause in repro/bugs/ (or a new file there)"
            )
            .into());
        }
    }
    for c in repro::cases::all() {
        if !owner.contains_key(format!("case:{}", c.name).as_str()) {
            return Err(format!("case {} has no bug file claiming it", c.name).into());
        }
    }
    Ok(())
}

/// reports/STATUS.md and ISSUES.md's root-cause table are what `repro status` generates from
/// the committed data, and STATUS.md's backend marks agree with the sweep reports they come
/// from.
fn status_matches_its_sources() -> Result<(), Failed> {
    let root = &workspace_root();
    let reports = root.join("reports");
    let manifest = manifest_path();
    let status = repro::sweep::status::status_markdown(
        &reports,
        &manifest,
        &root.join(repro::manifest::DEFAULT_PATH),
    )?;
    if std::fs::read_to_string(reports.join("STATUS.md"))? != status {
        return Err("reports/STATUS.md is stale: run `cargo run -p repro -- status`".into());
    }
    let (_, issues) = repro::sweep::status::regenerate_issues(root, &manifest)?;
    if std::fs::read_to_string(root.join("ISSUES.md"))? != issues {
        return Err(
            "ISSUES.md's root-cause table is stale: run `cargo run -p repro -- status`".into(),
        );
    }
    let disagreements = repro::sweep::status::marks_vs_reports(&reports, &manifest)?;
    if !disagreements.is_empty() {
        return Err(disagreements.join("\n").into());
    }
    Ok(())
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
    trials.push(Trial::test("one_root_cause_per_divergence", || {
        guarded(one_root_cause_per_divergence)
    }));
    trials.push(Trial::test("status_matches_its_sources", || {
        guarded(status_matches_its_sources)
    }));
    trials.push(Trial::test("one_repro_per_divergence", || {
        guarded(one_repro_per_divergence)
    }));
    libtest_mimic::run(&args, trials).exit();
}
