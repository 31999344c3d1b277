//! The case binaries as a user meets them: exit codes, one-line errors, the three output forms.

use std::path::Path;
use std::process::{Command, Output};

const SCATTER: &str = env!("CARGO_BIN_EXE_scatter_add_u32");
const BROADCAST: &str = env!("CARGO_BIN_EXE_broadcast_contiguous_u32");

fn run(exe: &str, args: &[&str]) -> Output {
    Command::new(exe)
        .args(args)
        .env_remove(harness::DEVICE_ENV)
        .output()
        .expect("binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let no_cuda = if candle_core::utils::cuda_is_available() {
        "metal"
    } else {
        "cuda"
    };
    for args in [
        vec!["--device", "tpu"],
        vec!["--device", "cuda:x"],
        vec!["--device", no_cuda],
        vec!["--device", "cpu", "--variant", "no-such-variant"],
        vec!["--device", "cpu", "--json", "--issue"],
    ] {
        let o = run(SCATTER, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(o.stdout.is_empty(), "{args:?} printed a report");
        if !args.contains(&"--issue") {
            // clap's own usage errors print a usage block; ours are exactly one line.
            assert_eq!(
                stderr(&o).trim_end().lines().count(),
                1,
                "{args:?}: {}",
                stderr(&o)
            );
        }
    }
}

#[test]
fn unwritable_report_dir_fails_cleanly() {
    let dir = std::env::temp_dir().join(format!("repro-cli-{}-file", std::process::id()));
    std::fs::write(&dir, "a file, not a folder").unwrap();
    let o = run(
        BROADCAST,
        &["--device", "cpu", "--report-dir", dir.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("error: cannot write reports"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_file(&dir).unwrap();
}

#[test]
fn cpu_run_is_inconclusive_and_writes_three_reports() {
    let dir = std::env::temp_dir().join(format!("repro-cli-{}", std::process::id()));
    let o = run(
        SCATTER,
        &[
            "--device",
            "cpu",
            "--json",
            "--report-dir",
            dir.to_str().unwrap(),
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(12),
        "inconclusive without an accelerator: {}",
        stderr(&o)
    );
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("--json prints JSON");
    assert_eq!(json["verdict"], "inconclusive");
    assert_eq!(json["environment"]["target"]["backend"], "cpu");
    assert!(json["environment"]["candle_version"]
        .as_str()
        .unwrap()
        .starts_with("0."));
    for ext in ["txt", "json", "md"] {
        let p = dir.join("cpu").join(format!("scatter_add_u32.{ext}"));
        assert!(Path::new(&p).is_file(), "{} missing", p.display());
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("cpu"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn issue_markdown_for_a_caller_error_claims_no_op_bug() {
    let o = run(
        SCATTER,
        &["--device", "cpu", "--issue", "--variant", "literal"],
    );
    let md = String::from_utf8_lossy(&o.stdout);
    // On CPU alone the case stays inconclusive, and the text says the call is invalid.
    assert!(md.contains("**Verdict: `inconclusive`**"), "{md}");
    assert!(md.contains("the arguments are swapped"), "{md}");
    assert!(
        md.contains("fn main() -> candle_core::Result<()>"),
        "the standalone main.rs is embedded"
    );
    assert!(md.contains("candle-core = { version = \"="), "{md}");
}

#[test]
fn a_failed_canary_makes_every_verdict_inconclusive() {
    let o = Command::new(SCATTER)
        .args(["--device", "cpu", "--json", "--variant", "literal"])
        .env_remove(harness::DEVICE_ENV)
        .env(harness::canary::SABOTAGE_ENV, "1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(12), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["canary"]["passed"], false);
    assert!(
        json["canary"]["failures"][0]
            .as_str()
            .unwrap()
            .contains("&a + &b"),
        "{json}"
    );
    for v in json["variants"].as_array().unwrap() {
        assert_eq!(v["verdict"], "inconclusive", "{}", v["name"]);
    }
    let text = run(SCATTER, &["--device", "cpu", "--variant", "literal"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("canary:    passed on cpu"));
}

/// A sweep of some ops into a report folder that holds a sweep of more is refused before it
/// runs (it would replace the fuller report the pages and upstream texts are made from).
#[test]
fn a_partial_sweep_does_not_replace_a_fuller_one() {
    let dir = std::env::temp_dir().join(format!("repro-partial-{}", std::process::id()));
    let sweep = dir.join("sweep/cpu");
    std::fs::create_dir_all(&sweep).unwrap();
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("../reports/sweep/cpu/sweep.json");
    std::fs::copy(&full, sweep.join("sweep.json")).unwrap();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("sweep-known.toml");
    let o = run(
        env!("CARGO_BIN_EXE_repro"),
        &[
            "sweep",
            "--device",
            "cpu",
            "--ops",
            "exp",
            "--report-dir",
            dir.to_str().unwrap(),
            "--manifest",
            manifest.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("it would drop"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(sweep.join("sweep.json")).unwrap(),
        std::fs::read(&full).unwrap(),
        "the fuller report is untouched"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
