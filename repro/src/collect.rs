//! `repro collect`: one command for the person with the hardware. Runs, on one device, the suite,
//! the op-consistency sweep, every performance repro and moe_bench, each as a child process with
//! a deadline; regenerates STATUS.md; ends with what changed against the manifests and exactly
//! what to commit (or attach). The same on Metal, CUDA and the CPU.

use crate::child::{last_words, tail, Ended, LineChild, Next};
use crate::error::Error;
use crate::sweep::known::Status as KnownStatus;
use crate::sweep::report::SweepReport;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// moe-core's benchmark (a binary of the moe-core package, built beside this one).
pub const MOE_BENCH: &str = "moe_bench";

pub struct CollectConfig {
    pub device: String,
    pub report_dir: PathBuf,
    /// Small sizes and few iterations: checks that every step runs, measures nothing worth
    /// committing (CI uses it).
    pub quick: bool,
    /// Rewrite the sweep manifest from this run (confirms or refutes source predictions).
    pub bless: bool,
    /// Per-step deadline.
    pub step_timeout: Duration,
}

/// One step: a program and its arguments.
struct Step {
    name: String,
    exe: PathBuf,
    args: Vec<String>,
    /// Exit codes that mean "ran, with findings" rather than "broke" (3: differs from a
    /// manifest; 10–12: a bench's or case's verdict).
    ok_codes: &'static [i32],
}

/// What a step did.
pub struct Outcome {
    pub name: String,
    pub ended: String,
    pub code: Option<i32>,
    pub seconds: f64,
    pub ok: bool,
    pub last_lines: String,
}

fn sibling(name: &str) -> Result<PathBuf, Error> {
    let exe = std::env::current_exe().map_err(|e| Error::Internal(e.to_string()))?;
    let dir = exe
        .parent()
        .ok_or_else(|| Error::Internal("this binary has no folder".into()))?;
    Ok(dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX)))
}

/// The cargo command that builds every binary collect runs, in this binary's profile and
/// features (so a `cargo run -p repro --release -- collect` builds moe_bench the same way).
pub fn build_command() -> Vec<String> {
    let release = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.ends_with("release")))
        .unwrap_or(false);
    let mut cmd = vec!["build".to_string(), "-q".into()];
    if release {
        cmd.push("--release".into());
    }
    cmd.extend(["-p", "repro", "-p", "moe-core", "--bins"].map(String::from));
    if cfg!(feature = "cuda") {
        cmd.extend(["--features", "cuda"].map(String::from));
    }
    cmd
}

/// Builds the sibling binaries with the cargo that ran us (`CARGO`, set by `cargo run`); with
/// no cargo around, checks they exist.
fn ensure_binaries(names: &[&str]) -> Result<(), Error> {
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| sibling(n).map(|p| !p.is_file()).unwrap_or(true))
        .collect();
    if let Ok(cargo) = std::env::var("CARGO") {
        let args = build_command();
        eprintln!("collect: cargo {}", args.join(" "));
        let status = Command::new(cargo)
            .args(&args)
            .status()
            .map_err(|e| Error::Internal(format!("cannot run cargo: {e}")))?;
        if !status.success() {
            return Err(Error::Internal(format!(
                "cargo {} failed ({status})",
                args.join(" ")
            )));
        }
        return Ok(());
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::Internal(format!(
            "not built: {} (run `cargo {}` first, or start collect with `cargo run`)",
            missing.join(", "),
            build_command().join(" ")
        )))
    }
}

fn steps(cfg: &CollectConfig, me: PathBuf) -> Result<Vec<Step>, Error> {
    let dir = cfg.report_dir.display().to_string();
    let dev = cfg.device.clone();
    let common = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec![
            "--device".into(),
            dev.clone(),
            "--report-dir".into(),
            dir.clone(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let mut out = Vec::new();
    let mut run = vec!["run".to_string()];
    run.extend(common(&[]));
    out.push(Step {
        name: "suite".into(),
        exe: me.clone(),
        args: run,
        ok_codes: &[0, 3],
    });
    let mut sweep = vec!["sweep".to_string()];
    sweep.extend(common(if cfg.bless { &["--bless"] } else { &[] }));
    out.push(Step {
        name: "sweep".into(),
        exe: me,
        args: sweep,
        ok_codes: &[0, 3],
    });
    for p in crate::perf::ALL.iter().map(|p| p.name) {
        let quick: &[&str] = match (cfg.quick, p) {
            (false, _) => &[],
            (true, "fp16_cast_overhead") => &[
                "--iters",
                "2",
                "--warmup-ms",
                "0",
                "--dims",
                "16",
                "--tokens",
                "8",
                "--layers",
                "1",
            ],
            (true, "router_topk_sync") => &[
                "--iters",
                "2",
                "--warmup-ms",
                "0",
                "--experts",
                "4",
                "--k",
                "2",
                "--tokens",
                "16",
                "--dim",
                "8",
                "--layers",
                "1",
            ],
            (true, "index_add_rows") => &[
                "--iters",
                "2",
                "--warmup-ms",
                "0",
                "--rows",
                "64",
                "--width",
                "8",
            ],
            (true, "cuda_pool_release") => &[
                "--iters",
                "2",
                "--warmup-ms",
                "0",
                "--tokens",
                "64",
                "--width",
                "8",
            ],
            (true, _) => &["--max-width", "64"],
        };
        out.push(Step {
            name: p.into(),
            exe: sibling(p)?,
            args: common(quick),
            ok_codes: &[0, 10, 11, 12],
        });
    }
    let moe_quick: &[&str] = if cfg.quick {
        &[
            "--iters",
            "2",
            "--warmup-ms",
            "0",
            "--tokens",
            "32",
            "--dims",
            "8",
        ]
    } else {
        &["--dtypes", "f32,bf16"]
    };
    out.push(Step {
        name: MOE_BENCH.into(),
        exe: sibling(MOE_BENCH)?,
        args: common(moe_quick),
        ok_codes: &[0],
    });
    Ok(out)
}

fn run_step(s: &Step, timeout: Duration) -> std::io::Result<Outcome> {
    let start = Instant::now();
    let mut cmd = Command::new(&s.exe);
    cmd.args(&s.args);
    let child = LineChild::spawn(cmd)?;
    let until = start + timeout;
    let mut lines = Vec::new();
    loop {
        match child.next_line(until) {
            Next::Line(l) => lines.push(l),
            Next::Closed => break,
            Next::Silent if Instant::now() >= until => break,
            Next::Silent => {}
        }
    }
    let (ended, stderr) = child.finish(until)?;
    let code = ended.code();
    let ok = matches!(ended, Ended::Exited(_)) && code.is_some_and(|c| s.ok_codes.contains(&c));
    let last_lines = if ok {
        lines
            .iter()
            .rev()
            .take(3)
            .rev()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        format!(
            "{}\n{}",
            lines
                .iter()
                .rev()
                .take(5)
                .rev()
                .cloned()
                .collect::<Vec<_>>()
                .join("\n"),
            tail(&stderr, 8)
        )
    };
    Ok(Outcome {
        name: s.name.clone(),
        ended: match &ended {
            Ended::Killed => format!("killed after {} s", timeout.as_secs()),
            e if !ok => format!("{}: {}", e.describe(), last_words(&stderr)),
            e => e.describe(),
        },
        code,
        seconds: start.elapsed().as_secs_f64(),
        ok,
        last_lines,
    })
}

/// What changed against the manifests, read from the reports this run wrote.
fn changes(report_dir: &Path, backend: &str) -> Vec<String> {
    let mut out = Vec::new();
    // A report this run did not write (a step that broke) says nothing here.
    let suite = crate::runner::SuiteReport::read(&report_dir.join(backend).join("suite.json"));
    if let Ok(s) = suite {
        for c in &s.cases {
            if c.status != crate::manifest::Status::AsExpected {
                out.push(format!(
                    "suite: {} {}: {}",
                    c.case,
                    c.status.as_str(),
                    c.message
                ));
            }
        }
    }
    let sweep = SweepReport::read(&report_dir.join("sweep").join(backend).join("sweep.json"));
    if let Ok(s) = sweep {
        for d in &s.divergences {
            if d.status != Some(KnownStatus::Expected) {
                out.push(format!("sweep: {}: {}", d.id, d.status_message));
            }
        }
        for (id, status, message) in &s.missing {
            if *status != KnownStatus::NotRun {
                out.push(format!("sweep: {id}: {message}"));
            }
        }
        for (op, why) in s.incomplete() {
            out.push(format!("sweep: {op} not completed: {why}"));
        }
    }
    out
}

/// Runs every step and prints progress and the summary; the exit code is 0 when every step ran
/// and nothing differs from the manifests, 3 when something differs, 1 when a step broke.
pub fn collect(cfg: &CollectConfig, backend: &str) -> Result<u8, Error> {
    // What was predicted for a backend no run had covered, before --bless rewrites the manifest.
    let predicted = crate::first_run::predictions_before(Path::new("."), backend)?;
    let mut names: Vec<&str> = crate::perf::ALL.iter().map(|p| p.name).collect();
    names.push(MOE_BENCH);
    // This binary's path, read before the build: if cargo rebuilds it, /proc/self/exe names
    // the replaced file ("… (deleted)"), while the path holds the new build.
    let me = std::env::current_exe().map_err(|e| Error::Internal(e.to_string()))?;
    ensure_binaries(&names)?;
    let steps = steps(cfg, me)?;
    let n = steps.len();
    let start = Instant::now();
    let mut outcomes = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        eprintln!(
            "[{}/{n}] {} … ({:.0} s so far)",
            i + 1,
            s.name,
            start.elapsed().as_secs_f64()
        );
        let o = run_step(s, cfg.step_timeout)
            .map_err(|e| Error::Internal(format!("{}: {e}", s.name)))?;
        eprintln!(
            "[{}/{n}] {} {} in {:.1} s",
            i + 1,
            s.name,
            if o.ok { "done" } else { "FAILED" },
            o.seconds
        );
        outcomes.push(o);
    }
    // STATUS.md from the manifests and whatever sweep reports exist now.
    let status = crate::sweep::status::write_status(
        &cfg.report_dir,
        Path::new(crate::sweep::known::DEFAULT_PATH),
        Path::new(crate::manifest::DEFAULT_PATH),
    );
    println!(
        "\ncollect on {backend} in {:.0} s",
        start.elapsed().as_secs_f64()
    );
    for o in &outcomes {
        println!(
            "  {:<20} {:<8} {:>7.1} s  {}",
            o.name,
            if o.ok { "ok" } else { "FAILED" },
            o.seconds,
            o.ended
        );
        if !o.ok {
            for l in o.last_lines.lines() {
                println!("      | {l}");
            }
        }
    }
    if let Err(e) = status {
        println!("  STATUS.md not written: {e}");
    }
    let changed = changes(&cfg.report_dir, backend);
    // With --bless the sweep's changes are already in the manifest; the suite's never are.
    let (recorded, differs): (Vec<&String>, Vec<&String>) = changed
        .iter()
        .partition(|c| cfg.bless && c.starts_with("sweep:"));
    let broke = outcomes.iter().filter(|o| !o.ok).count();
    if broke > 0 {
        println!("\n{broke} step(s) failed (above); their reports are missing or stale.");
    }
    if !recorded.is_empty() {
        println!(
            "\nRecorded in repro/sweep-known.toml by --bless ({}; review the diff):",
            recorded.len()
        );
        for c in &recorded {
            println!("  - {c}");
        }
    }
    if !differs.is_empty() {
        println!("\nDiffers from the manifests ({}):", differs.len());
        for c in &differs {
            println!("  - {c}");
        }
        println!("Review the reports named above; to record this run's sweep, rerun with --bless (it confirms or refutes the source predictions too), and update repro/expected.toml for suite changes.");
    } else if broke == 0 {
        println!("\nNothing else differs from repro/expected.toml and repro/sweep-known.toml.");
    }
    if let Some(text) = predicted
        .as_ref()
        .and_then(|p| crate::first_run::report(&cfg.report_dir, backend, p))
    {
        print!("{text}");
    }
    let dir = cfg.report_dir.display();
    let blessed = if cfg.bless {
        " repro/sweep-known.toml repro/sweep-repros"
    } else {
        ""
    };
    println!(
        "\nTo share: commit what this run wrote (`git add {dir}{blessed} && git status`: {dir}/{backend}/, {dir}/sweep/{backend}/, {dir}/STATUS.md), or attach a bundle to an issue: `tar czf collect-{backend}.tar.gz {dir}/{backend} {dir}/sweep/{backend} {dir}/STATUS.md`."
    );
    Ok(if broke > 0 {
        1
    } else if differs.is_empty() {
        0
    } else {
        3
    })
}
