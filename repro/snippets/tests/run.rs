//! Runs every standalone snippet (the `main.rs` pasted into upstream issues) on the CPU, so they
//! never rot. One named test per file in src/bin/, found there, not listed: its owner (a case of
//! `repro::cases::all()` or a perf repro of `repro::perf::ALL`, by name) says whether to run it
//! and which lines its output must hold (computed in plain Rust in the owner's file); the output
//! is snapshotted. A snippet without an owner fails; one its owner only compiles is ignored with
//! the owner's reason.

use harness::case::SnippetRun;
use libtest_mimic::{Arguments, Failed, Trial};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The snippet binaries sit beside this test's folder (target/<profile>/deps/..).
fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

fn owner(name: &str) -> Option<SnippetRun> {
    repro::cases::all()
        .into_iter()
        .find(|c| c.name == name)
        .map(|c| c.snippet_run)
        .or_else(|| {
            repro::perf::ALL
                .iter()
                .find(|p| p.name == name)
                .map(|p| p.snippet_run)
        })
}

fn run(name: &str, check: fn(&str) -> Result<(), String>) -> Result<(), Failed> {
    let exe = binary(&format!("snippet_{name}"));
    let out = Command::new(&exe)
        .arg("cpu")
        .output()
        .map_err(|e| format!("{}: {e}", exe.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "snippet_{name} failed: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    check(&stdout).map_err(|e| format!("snippet_{name}: {e} in:\n{stdout}"))?;
    insta::with_settings!({ snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots"), prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!(format!("run__{name}@cpu"), stdout);
    });
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("src/bin")
        .filter_map(|e| {
            let file = e.ok()?.file_name().into_string().ok()?;
            Some(
                file.strip_prefix("snippet_")?
                    .strip_suffix(".rs")?
                    .to_string(),
            )
        })
        .collect();
    names.sort();
    assert!(
        !names.is_empty(),
        "no snippet_<name>.rs under {}",
        dir.display()
    );
    let trials = names
        .into_iter()
        .map(|name| {
            let test = format!("{name}_snippet");
            match owner(&name) {
                Some(SnippetRun::Check(check)) => Trial::test(test, move || run(&name, check)),
                Some(SnippetRun::CompileOnly(why)) => Trial::test(test, || Ok(()))
                    .with_ignored_flag(true)
                    .with_kind(why),
                None => Trial::test(test, move || {
                    Err(
                        format!("snippet_{name}.rs: no case or perf repro named `{name}` owns it")
                            .into(),
                    )
                }),
            }
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
