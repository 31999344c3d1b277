//! The suite runner as a user meets it: process isolation (panic, abort, segfault, hang),
//! the manifest's expected-status discipline, clean errors on bad input, and whole reports only.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const REPRO: &str = env!("CARGO_BIN_EXE_repro");

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("repro-runner-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// `repro ARGS` from the repository root, with the self-test cases when `selftest`.
fn command(args: &[&str], selftest: bool) -> Command {
    let mut c = Command::new(REPRO);
    c.args(args)
        .env_remove(harness::DEVICE_ENV)
        .env("RUST_BACKTRACE", "0");
    // The manifest path is relative to the repository root.
    c.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap());
    if selftest {
        c.env(repro::cases::selftest::ENV, "1");
    } else {
        c.env_remove(repro::cases::selftest::ENV);
    }
    c
}

fn repro(args: &[&str], selftest: bool) -> Output {
    command(args, selftest).output().expect("repro runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn no_temp_files(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !name.ends_with(".tmp") && !name.starts_with(".write-probe"),
            "left behind: {name}"
        );
    }
}

#[test]
fn each_way_of_dying_is_reported_and_the_rest_still_run() {
    let dir = scratch("deaths");
    let o = repro(
        &[
            "run",
            "selftest_panic",
            "selftest_abort",
            "selftest_segfault",
            "selftest_hang",
            "selftest_ok",
            "--device",
            "cpu",
            "--timeout",
            "2",
            "--json",
            "--report-dir",
            dir.to_str().unwrap(),
        ],
        true,
    );
    // Cases without a manifest entry that die make the run fail.
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    let suite: serde_json::Value =
        serde_json::from_slice(&o.stdout).expect("--json prints the suite");
    let verdicts: Vec<(String, String, String)> = suite["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["case"].as_str().unwrap().into(),
                c["verdict"].as_str().unwrap().into(),
                c["summary"].as_str().unwrap().into(),
            )
        })
        .collect();
    let find = |n: &str| {
        verdicts
            .iter()
            .find(|v| v.0 == n)
            .unwrap_or_else(|| panic!("{n} missing: {verdicts:?}"))
    };
    // A crash is `crashed`, with the words that say how the process died in its summary.
    let crashed_with = |case: &str, words: &str| {
        let (_, verdict, summary) = find(case);
        assert_eq!(verdict, "crashed", "{:?}", find(case));
        assert!(summary.contains(words), "{:?}", find(case));
    };
    crashed_with("selftest_panic", "panicked: selftest: deliberate panic");
    crashed_with("selftest_abort", "SIGABRT");
    crashed_with("selftest_segfault", "SIGSEGV");
    assert_eq!(find("selftest_hang").1, "hung");
    assert_eq!(
        find("selftest_ok").1,
        "inconclusive",
        "the case after the deaths still ran"
    );
    for case in [
        "selftest_panic",
        "selftest_abort",
        "selftest_segfault",
        "selftest_hang",
        "selftest_ok",
    ] {
        for ext in ["txt", "json", "md"] {
            assert!(
                dir.join("cpu").join(format!("{case}.{ext}")).is_file(),
                "{case}.{ext} missing"
            );
        }
    }
    assert!(dir.join("cpu/suite.json").is_file() && dir.join("cpu/suite.txt").is_file());
    no_temp_files(&dir.join("cpu"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_real_suite_matches_the_manifest_on_cpu() {
    let dir = scratch("suite");
    let o = repro(
        &[
            "run",
            "--device",
            "cpu",
            "--report-dir",
            dir.to_str().unwrap(),
        ],
        false,
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let out = text(&o.stdout);
    let n = repro::cases::all().len();
    assert!(
        out.contains(&format!("{n} cases on cpu"))
            && out.contains(&format!("{n} as expected, 0 changed, 0 without an entry")),
        "{out}"
    );
    // The README's main job: without case names the sweep runs too, and the run ends with the
    // root causes it showed on this device (the CPU shows some on every machine).
    let summary = out
        .rsplit_once("\nRoot causes (repro/bugs/): ")
        .map(|(_, s)| s)
        .unwrap_or_else(|| panic!("no root-cause summary at the end:\n{out}"));
    let seen: usize = summary
        .split_once("this run on cpu showed ")
        .and_then(|(_, s)| s.split('.').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of root causes seen:\n{summary}"));
    assert!(seen > 0, "{summary}");
    assert_eq!(
        summary.lines().filter(|l| l.starts_with("  ")).count(),
        seen,
        "{summary}"
    );
    assert!(dir.join("sweep/cpu/sweep.json").is_file());
    no_temp_files(&dir.join("cpu"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs `scatter_add_u32` on the CPU against a manifest holding `entry`; returns the exit code
/// and stdout.
fn run_against_manifest(name: &str, entry: &str) -> (Option<i32>, String) {
    let dir = scratch(name);
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = dir.join("expected.toml");
    std::fs::write(&manifest, entry).unwrap();
    let reports = dir.join("reports");
    let o = repro(
        &[
            "run",
            "scatter_add_u32",
            "--device",
            "cpu",
            "--manifest",
            manifest.to_str().unwrap(),
            "--report-dir",
            reports.to_str().unwrap(),
        ],
        false,
    );
    std::fs::remove_dir_all(&dir).unwrap();
    (o.status.code(), text(&o.stdout))
}

#[test]
fn a_verdict_that_differs_from_the_manifest_fails_and_says_what_to_do() {
    let (code, out) = run_against_manifest(
        "changed",
        "[scatter_add_u32.cpu]\nverdict = \"reproduced\"\ncandle = \"0.9.2\"\n",
    );
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("CHANGED"), "{out}");
    assert!(
        out.contains("fixed upstream?") && out.contains("update repro/expected.toml and ISSUES.md"),
        "{out}"
    );
}

/// On the CPU every verdict is `inconclusive`, so the manifest's `cpu_vs_oracle` is what a
/// CPU-only run can check: the CPU that starts agreeing with the oracle where candle's
/// backend-independent code is known wrong fails the run.
#[test]
fn a_cpu_that_stops_disagreeing_with_the_oracle_fails_the_run() {
    // scatter_add_u32's CPU agrees with the oracle; the manifest claims it does not.
    let (code, out) = run_against_manifest(
        "cpu-oracle",
        "[scatter_add_u32.cpu]\nverdict = \"inconclusive\"\ncandle = \"0.11.1\"\ncpu_vs_oracle = \"disagrees\"\n",
    );
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains("the cpu now agrees with the oracle") && out.contains("fixed upstream?"),
        "{out}"
    );
}

#[test]
fn bad_input_is_one_line_exit_2_and_writes_nothing() {
    let dir = scratch("bad");
    let d = dir.to_str().unwrap();
    let bad_manifest = scratch("bad-manifest.toml");
    std::fs::write(
        &bad_manifest,
        "[no_such_case.cpu]\nverdict = \"reproduced\"\ncandle = \"0.11.1\"\n",
    )
    .unwrap();
    let a_file = scratch("a-file");
    std::fs::write(&a_file, "not a folder").unwrap();
    let no_backend = if candle_core::utils::cuda_is_available() {
        "metal"
    } else {
        "cuda"
    };
    let cases: Vec<Vec<&str>> = vec![
        vec!["run", "no_such_case", "--device", "cpu", "--report-dir", d],
        vec!["run", "--device", "tpu", "--report-dir", d],
        vec!["run", "--device", no_backend, "--report-dir", d],
        vec![
            "run",
            "--device",
            "cpu",
            "--timeout",
            "0",
            "--report-dir",
            d,
        ],
        vec![
            "run",
            "--device",
            "cpu",
            "--timeout",
            "soon",
            "--report-dir",
            d,
        ],
        vec![
            "run",
            "--device",
            "cpu",
            "--manifest",
            bad_manifest.to_str().unwrap(),
            "--report-dir",
            d,
        ],
        vec![
            "run",
            "--device",
            "cpu",
            "--manifest",
            "/nonexistent/expected.toml",
            "--report-dir",
            d,
        ],
        vec![
            "run",
            "--device",
            "cpu",
            "--report-dir",
            a_file.to_str().unwrap(),
        ],
    ];
    for args in cases {
        let o = repro(&args, false);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
        assert!(o.stdout.is_empty(), "{args:?} printed {}", text(&o.stdout));
        let err = text(&o.stderr);
        if !args.contains(&"--timeout") {
            // clap's own value errors carry a usage hint; ours are exactly one line.
            assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        }
        assert!(err.starts_with("error:"), "{args:?}: {err}");
        assert!(!dir.exists(), "{args:?} wrote into the report folder");
    }
    std::fs::remove_file(&bad_manifest).unwrap();
    std::fs::remove_file(&a_file).unwrap();
}

/// Killing the runner mid-run (as Ctrl-C or a CI timeout would) leaves only whole reports.
#[test]
fn an_interrupted_run_leaves_no_half_written_report() {
    let dir = scratch("interrupted");
    let mut child = command(
        &[
            "run",
            "scatter_add_u32",
            "selftest_hang",
            "--device",
            "cpu",
            "--timeout",
            "30",
            "--report-dir",
            dir.to_str().unwrap(),
        ],
        true,
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    // Wait until the first case's report is in place and the hang has started, then kill.
    let first = dir.join("cpu/scatter_add_u32.json");
    let start = std::time::Instant::now();
    while !first.is_file() && start.elapsed().as_secs() < 30 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();
    // The runner's own child (the hung case) does not outlive it.
    #[cfg(target_os = "linux")]
    {
        let marker = dir.to_string_lossy().to_string();
        let alive = || {
            std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
                std::fs::read(e.path().join("cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&marker))
            })
        };
        let start = std::time::Instant::now();
        while alive() && start.elapsed().as_secs() < 5 {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(!alive(), "the hung case outlived the killed runner");
    }
    let folder = dir.join("cpu");
    no_temp_files(&folder);
    assert!(
        !folder.join("suite.json").exists(),
        "the suite summary is written only at the end"
    );
    assert!(
        !folder.join("selftest_hang.json").exists(),
        "no report for the unfinished case"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&first).unwrap()).expect("whole JSON");
    assert_eq!(json["case"], "scatter_add_u32");
    std::fs::remove_dir_all(&dir).unwrap();
}
