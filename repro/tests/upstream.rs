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
    for name in a.keys().filter(|n| !b.contains_key(*n)) {
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
