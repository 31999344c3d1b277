//! The committed upstream texts (`reports/upstream/*.md`) and their repros
//! (`repro/upstream-repros/src/bin/*.rs`) are exactly what `repro upstream` generates from the
//! committed data: regenerated into a temporary folder and compared file by file, so a text
//! cannot drift from the runs it reports (or from the root-cause notes it quotes).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const REPRO: &str = env!("CARGO_BIN_EXE_repro");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn files(dir: &Path, ext: &str) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect()
}

fn same(committed: &Path, generated: &Path, ext: &str) -> Vec<String> {
    let (a, b) = (files(committed, ext), files(generated, ext));
    let mut problems = Vec::new();
    for (name, text) in &b {
        match a.get(name) {
            None => problems.push(format!("{name}: generated but not committed")),
            Some(t) if t != text => {
                let line = t
                    .lines()
                    .zip(text.lines())
                    .position(|(x, y)| x != y)
                    .map_or_else(|| "length".to_string(), |n| format!("line {}", n + 1));
                problems.push(format!("{name}: differs from the generated text ({line})"));
            }
            Some(_) => {}
        }
    }
    // REVIEW.md is the hand-kept record of the review, not generated.
    for name in a
        .keys()
        .filter(|n| !b.contains_key(*n) && n.as_str() != repro::upstream::REVIEW)
    {
        problems.push(format!("{name}: committed but no longer generated"));
    }
    problems
}

#[test]
fn committed_upstream_texts_are_what_the_data_generates() {
    // The generated repros are formatted with rustfmt: without it the comparison cannot be made,
    // which is a failure, not a skip.
    assert!(
        Command::new("rustfmt").arg("--version").output().is_ok(),
        "rustfmt is not installed: `repro upstream` needs it (rustup component add rustfmt)"
    );
    let tmp = std::env::temp_dir().join(format!("upstream-texts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let out = Command::new(REPRO)
        .current_dir(root())
        .args(["upstream", "--report-dir", "reports", "--out"])
        .arg(tmp.join("texts"))
        .arg("--repro-dir")
        .arg(tmp.join("bin"))
        .output()
        .expect("repro runs");
    assert!(
        out.status.success(),
        "repro upstream failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut problems = same(&root().join("reports/upstream"), &tmp.join("texts"), "md");
    problems.extend(same(
        &root().join(repro::upstream::REPRO_DIR),
        &tmp.join("bin"),
        "rs",
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(
        problems.is_empty(),
        "regenerate with `cargo run -p repro -- upstream` and review the diff:\n{}",
        problems.join("\n")
    );
}

/// Runs `repro upstream` from the workspace root on `report_dir`, into `out` and `bin`.
fn upstream_into(report_dir: &Path, out: &Path, bin: &Path) -> std::process::Output {
    Command::new(REPRO)
        .current_dir(root())
        .arg("upstream")
        .arg("--report-dir")
        .arg(report_dir)
        .arg("--out")
        .arg(out)
        .arg("--repro-dir")
        .arg(bin)
        .output()
        .expect("repro runs")
}

/// A folder without runs (a typo, an empty folder), runs of another candle release, or a
/// partial set: one line, exit 2, and the folders it would write keep what they held (the
/// committed repros were once deleted as "stale" this way).
#[test]
fn a_report_folder_without_the_runs_is_refused_and_nothing_is_touched() {
    let tmp = std::env::temp_dir().join(format!("upstream-refuse-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let (out, bin) = (tmp.join("out"), tmp.join("bin"));
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(out.join("keep.md"), "kept").unwrap();
    std::fs::write(bin.join("keep.rs"), "kept").unwrap();

    let empty = tmp.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let other = tmp.join("other-release");
    let partial = tmp.join("partial");
    for (dir, backends) in [(&other, &["cpu", "cuda"][..]), (&partial, &["cpu"][..])] {
        for b in backends {
            let d = dir.join("sweep").join(b);
            std::fs::create_dir_all(&d).unwrap();
            let mut json =
                std::fs::read_to_string(root().join("reports/sweep").join(b).join("sweep.json"))
                    .unwrap();
            if dir == &other {
                json = json.replace(
                    "\"candle_version\": \"0.11.1\"",
                    "\"candle_version\": \"0.9.2\"",
                );
            }
            std::fs::write(d.join("sweep.json"), json).unwrap();
        }
        std::fs::copy(root().join("reports/matrix.json"), dir.join("matrix.json")).unwrap();
    }
    for (dir, says) in [
        (&empty, "is missing"),
        (&tmp.join("no-such-folder"), "is missing"),
        (&other, "a run of candle 0.9.2"),
        (&partial, "cuda/sweep.json is missing"),
    ] {
        let o = upstream_into(dir, &out, &bin);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(2), "{}: {err}", dir.display());
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(
            err.contains(says),
            "{}: {err:?} should say {says:?}",
            dir.display()
        );
        for d in [&out, &bin] {
            let names: Vec<String> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert_eq!(names.len(), 1, "{}: {names:?}", d.display());
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
