//! `repro sweep` as a user meets it: the manifest's expected-failure discipline (a divergence
//! that appears or goes away fails the run), bad input, and the canary guard.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const REPRO: &str = env!("CARGO_BIN_EXE_repro");

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sweep-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn sweep(args: &[&str], dir: &Path) -> Output {
    sweep_with_env(args, dir, &[])
}

fn sweep_with_env(args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(REPRO);
    cmd.arg("sweep")
        .args(["--device", "cpu", "--jobs", "2"])
        .arg("--report-dir")
        .arg(dir.join("reports"))
        .arg("--repro-dir")
        .arg(dir.join("repros"))
        .args(args)
        .env_remove(harness::DEVICE_ENV)
        .env_remove(harness::canary::SABOTAGE_ENV);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("repro runs")
}

/// `--ops OPS --manifest MANIFEST`, then `extra`.
fn ops_args<'a>(ops: &'a str, manifest: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--ops", ops, "--manifest", manifest.to_str().unwrap()];
    args.extend_from_slice(extra);
    args
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The committed manifest: the CPU divergences of `gather` and `silu` are all known.
fn committed_manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sweep-known.toml")
}

#[test]
fn known_divergences_are_expected_failures() {
    let dir = tmp("known");
    let manifest = committed_manifest();
    let o = sweep(&ops_args("gather,silu", &manifest, &[]), &dir);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("expected failure"), "{}", text(&o));
    let json = dir.join("reports/sweep/cpu/sweep.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert!(v["divergences"].as_array().unwrap().len() >= 3);
    // Each divergence gets its issue text.
    assert!(dir
        .join("reports/sweep/cpu/gather-fwd-unimplemented-src-transposed.md")
        .is_file());
}

#[test]
fn a_new_divergence_and_a_vanished_one_fail_the_run() {
    let dir = tmp("changed");
    // A manifest that lacks every gather divergence and claims one silu never shows.
    let manifest = dir.join("known.toml");
    std::fs::write(
        &manifest,
        "[silu-fwd-wrong-result]\ncategory = \"wrong-result\"\nbackends = [\"cpu\"]\nfirst_seen = \"0.11.1\"\ncandle = \"0.11.1\"\nobserved = true\n",
    )
    .unwrap();
    let o = sweep(&ops_args("gather,silu", &manifest, &[]), &dir);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("new divergence"), "{out}");
    assert!(out.contains("fixed? update the manifest"), "{out}");
    // --bless makes the manifest say what the run saw.
    let o = sweep(&ops_args("gather,silu", &manifest, &["--bless"]), &dir);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let blessed = std::fs::read_to_string(&manifest).unwrap();
    assert!(
        blessed.contains("[gather-fwd-unimplemented-src-transposed]"),
        "{blessed}"
    );
    assert!(!blessed.contains("[silu-fwd-wrong-result]"), "{blessed}");
    assert!(dir
        .join("repros/sweep_gather_fwd_unimplemented_src_transposed.rs")
        .is_file());
    let o = sweep(&ops_args("gather,silu", &manifest, &[]), &dir);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let dir = tmp("bad");
    for args in [
        vec!["--ops", "no_such_op"],
        vec!["--manifest", "/no/such/manifest.toml"],
    ] {
        let o = sweep(&args, &dir);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert_eq!(
            String::from_utf8_lossy(&o.stderr).lines().count(),
            1,
            "{args:?}"
        );
    }
    assert!(!dir.join("reports").exists(), "bad input wrote reports");
}

#[test]
fn a_failing_canary_sweeps_nothing() {
    let dir = tmp("canary");
    let o = Command::new(REPRO)
        .args(["sweep", "--device", "cpu", "--ops", "silu", "--report-dir"])
        .arg(dir.join("reports"))
        .arg("--manifest")
        .arg(committed_manifest())
        .env(harness::canary::SABOTAGE_ENV, "1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(12), "{}", text(&o));
    assert!(
        !dir.join("reports").exists(),
        "a distrusted device got reports"
    );
}

/// Runs `silu` alone with a child sabotaged as `CANDLE_REPRO_SWEEP_SELFTEST` says.
fn sabotaged_sweep(name: &str, sabotage: &str, extra: &[&str]) -> (Output, PathBuf) {
    let dir = tmp(name);
    let manifest = committed_manifest();
    let o = sweep_with_env(
        &ops_args("silu", &manifest, extra),
        &dir,
        &[(repro::sweep::SELFTEST_ENV, sabotage)],
    );
    (o, dir)
}

#[test]
fn a_child_that_dies_before_its_first_cell_fails_the_sweep() {
    let (o, dir) = sabotaged_sweep("died", "panic-before:silu", &[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("not completed: silu: a child panicked outside a cell (before its first cell)"),
        "{t}"
    );
    assert!(
        t.contains("selftest"),
        "the child's last words are quoted: {t}"
    );
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("reports/sweep/cpu/sweep.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(v["ops"]["silu"]["completed"], false);
}

#[test]
fn a_cell_that_hangs_is_a_finding_and_the_op_goes_on() {
    let (o, _) = sabotaged_sweep("hung", "hang-in-cell:silu", &["--cell-timeout", "2"]);
    let t = text(&o);
    // The hang is a divergence the manifest does not know (exit 3), and the op still finishes.
    assert_eq!(o.status.code(), Some(3), "{t}");
    assert!(t.contains("silu-process-hung"), "{t}");
    assert!(!t.contains("not completed"), "{t}");
}

#[test]
fn a_child_silent_outside_a_cell_fails_the_sweep() {
    let (o, _) = sabotaged_sweep("silent", "hang-before:silu", &["--cell-timeout", "2"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(3), "{t}");
    assert!(t.contains("stayed silent for 2 s outside a cell"), "{t}");
}

#[test]
fn budget_exhaustion_fails_unless_partial_is_asked_for() {
    let (o, _) = sabotaged_sweep("budget", "hang-before:silu", &["--budget", "2"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(3), "{t}");
    assert!(
        t.contains("not completed: silu: the sweep's budget (2 s) ran out"),
        "{t}"
    );
    assert!(t.contains("--partial accepts that"), "{t}");
    // Asked for explicitly, a partial run reports the op but does not fail for it.
    let (o, _) = sabotaged_sweep(
        "partial",
        "hang-before:silu",
        &["--budget", "2", "--partial"],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("not completed: silu"), "{t}");
}
