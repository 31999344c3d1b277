//! The suite runner: every case in its own child process with a time limit, so a panic, abort,
//! segfault or hang in one case becomes that case's verdict (`crashed` / `hung`) and the others
//! still run. Reports reach `reports/<backend>/` only whole (written to a temporary name and
//! renamed), so an interrupted run leaves no half-written report.

use crate::child::{describe_status, last_words, tail, Ended, LineChild};
use crate::manifest::{self, Manifest, Status};
use harness::device::{DeviceInfo, CANDLE_VERSION};
use harness::report::write_atomic;
use harness::{Case, Verdict};
use serde::{Deserialize, Serialize};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The hidden subcommand a child runs.
pub const CHILD: &str = "__child";

pub struct SuiteConfig<'a> {
    pub cases: Vec<&'static Case>,
    pub device_spec: String,
    pub target: DeviceInfo,
    pub timeout: Duration,
    pub report_dir: PathBuf,
    pub command: String,
    pub manifest: &'a Manifest,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CaseResult {
    pub case: String,
    pub verdict: Verdict,
    /// The report's verdict line, or what killed the process.
    pub summary: String,
    pub expected: Option<String>,
    pub status: Status,
    /// What changed and what to do, when the verdict differs from the manifest.
    pub message: String,
    pub seconds: f64,
}

/// The version of `suite.json`. Readers refuse a newer one; a report written before the field
/// existed is version 1.
pub const SUITE_REPORT_SCHEMA: u32 = 1;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SuiteReport {
    #[serde(default = "harness::schema::v1")]
    pub schema_version: u32,
    pub candle_version: String,
    pub target: DeviceInfo,
    pub command: String,
    pub timeout_seconds: u64,
    pub wall_seconds: f64,
    pub cases: Vec<CaseResult>,
}

impl harness::schema::Versioned for SuiteReport {
    const SCHEMA: u32 = SUITE_REPORT_SCHEMA;
    const KIND: &'static str = "suite report";
    fn schema_version(&self) -> u32 {
        self.schema_version
    }
}

impl SuiteReport {
    /// Reads a `suite.json` the runner wrote: the one way collect and the version matrix get
    /// at a suite run.
    pub fn read(path: &Path) -> Result<SuiteReport, String> {
        harness::schema::read(path)
    }

    /// True when every verdict is as the manifest expects (or has no entry and did not crash).
    pub fn as_expected(&self) -> bool {
        self.cases.iter().all(|c| match c.status {
            Status::AsExpected => true,
            Status::Changed => false,
            Status::NoExpectation => !matches!(c.verdict, Verdict::Crashed | Verdict::Hung),
        })
    }

    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let backend = &self.target.backend;
        let w = self
            .cases
            .iter()
            .map(|c| c.case.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let mut out = format!(
            "suite on {} · candle {}\ncommand: {}\n\n",
            self.target, self.candle_version, self.command
        );
        let _ = writeln!(
            out,
            "{:<w$}  {:<15} {:<15} {:<15} {:>7}",
            "case", "verdict", "expected", "status", "seconds"
        );
        for c in &self.cases {
            let status = match c.status {
                Status::AsExpected => "as expected",
                Status::Changed => "CHANGED",
                Status::NoExpectation => "no entry",
            };
            let _ = writeln!(
                out,
                "{:<w$}  {:<15} {:<15} {:<15} {:>7.2}",
                c.case,
                c.verdict.as_str(),
                c.expected.as_deref().unwrap_or("-"),
                status,
                c.seconds
            );
        }
        let _ = writeln!(out);
        for c in &self.cases {
            let _ = writeln!(out, "{}: {}", c.case, c.summary);
        }
        let notes: Vec<&CaseResult> = self
            .cases
            .iter()
            .filter(|c| !c.message.is_empty())
            .collect();
        if !notes.is_empty() {
            let _ = writeln!(out);
            for c in notes {
                let _ = writeln!(out, "{}", c.message);
            }
        }
        let changed = self
            .cases
            .iter()
            .filter(|c| c.status == Status::Changed)
            .count();
        let _ = writeln!(
            out,
            "\n{} cases on {backend} in {:.1} s: {} as expected, {changed} changed, {} without an entry",
            self.cases.len(),
            self.wall_seconds,
            self.cases.iter().filter(|c| c.status == Status::AsExpected).count(),
            self.cases.iter().filter(|c| c.status == Status::NoExpectation).count(),
        );
        out
    }
}

/// Progress on stderr: a bar on a terminal, one plain line per case otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: usize,
}

impl Progress {
    fn new(total: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new(total as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed} {msg}")
                    .expect("valid template"),
            );
            b
        });
        Self { bar, total }
    }
    fn start(&self, case: &str) {
        if let Some(b) = &self.bar {
            b.set_message(case.to_string());
        }
    }
    fn done(&self, i: usize, r: &CaseResult) {
        match &self.bar {
            Some(b) => b.inc(1),
            None => eprintln!(
                "[{}/{}] {} {} ({:.2} s)",
                i + 1,
                self.total,
                r.case,
                r.verdict,
                r.seconds
            ),
        }
    }
    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Writes a report for a case whose process died or hung, in the three usual forms.
fn write_death_report(
    dir: &Path,
    backend: &str,
    case: &Case,
    r: &CaseResult,
    stderr_tail: &str,
    command: &str,
) -> std::io::Result<()> {
    let text = format!(
        "{}: {}\ncandle:    {CANDLE_VERSION}\ntarget:    {backend}\ncommand:   {command}\n\nVERDICT: {} — {}\n\nlast lines of stderr:\n{stderr_tail}\n",
        case.name, case.title, r.verdict, r.summary
    );
    let json = serde_json::json!({
        "case": case.name,
        "title": case.title,
        "verdict": r.verdict,
        "summary": r.summary,
        "candle_version": CANDLE_VERSION,
        "command": command,
        "stderr_tail": stderr_tail,
    });
    let md = format!(
        "## [{backend}] {}: the process {}\n\n**Verdict: `{}`** — {}\n\n- candle-core `{CANDLE_VERSION}`\n- produced by: `{command}`\n\n```text\n{stderr_tail}\n```\n",
        case.title, r.verdict, r.verdict, r.summary
    );
    let json = serde_json::to_string_pretty(&json).unwrap() + "\n";
    harness::report::write_report_set(dir, backend, case.name, text, json, md).map(|_| ())
}

/// Runs one case in a child process and files its reports.
fn run_one(cfg: &SuiteConfig, case: &Case, staging: &Path) -> std::io::Result<CaseResult> {
    let backend = cfg.target.backend.as_str();
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.args([CHILD, case.name, "--device", &cfg.device_spec, "--staging"])
        .arg(staging)
        .args(["--command", &cfg.command]);
    let start = Instant::now();
    // The child writes its reports to the staging folder; its stdout carries nothing we read.
    let (ended, _, stderr) = LineChild::spawn(cmd)?.collect(start + cfg.timeout)?;
    let seconds = start.elapsed().as_secs_f64();
    let staged = |ext: &str| staging.join(backend).join(format!("{}.{ext}", case.name));
    let expected = cfg.manifest.get(case.name, backend);
    let mut result = CaseResult {
        case: case.name.into(),
        verdict: Verdict::Inconclusive,
        summary: String::new(),
        expected: expected.map(|e| e.verdict.clone()),
        status: Status::NoExpectation,
        message: String::new(),
        seconds,
    };
    let stderr_tail = tail(&stderr, 20);
    // Whether the CPU disagreed with the oracle somewhere (read from the child's report).
    let mut cpu_disagrees = None;
    match ended {
        Ended::Exited(status)
            if matches!(status.code(), Some(0 | 10 | 11 | 12)) && staged("json").is_file() =>
        {
            let report = harness::case::CaseReport::read(&staged("json")).map_err(|e| {
                std::io::Error::other(format!("{}: unreadable child report: {e}", case.name))
            })?;
            cpu_disagrees = Some(report.variants.iter().any(|v| v.reference_disagrees));
            result.verdict = report.verdict;
            let text = std::fs::read_to_string(staged("txt"))?;
            result.summary = text
                .lines()
                .rev()
                .find_map(|l| l.strip_prefix("VERDICT: "))
                .unwrap_or("")
                .to_string();
            for ext in ["txt", "json", "md"] {
                let contents = std::fs::read_to_string(staged(ext))?;
                write_atomic(
                    &cfg.report_dir
                        .join(backend)
                        .join(format!("{}.{ext}", case.name)),
                    &contents,
                )?;
            }
        }
        died => {
            (result.verdict, result.summary) = match died {
                Ended::Exited(status) => (
                    Verdict::Crashed,
                    format!(
                        "the case's process {}: {}",
                        describe_status(&status),
                        last_words(&stderr)
                    ),
                ),
                Ended::Killed => (
                    Verdict::Hung,
                    format!(
                        "no result within {} s; the process was killed",
                        cfg.timeout.as_secs()
                    ),
                ),
            };
            write_death_report(
                &cfg.report_dir,
                backend,
                case,
                &result,
                &stderr_tail,
                &cfg.command,
            )?;
        }
    }
    let report = cfg
        .report_dir
        .join(backend)
        .join(format!("{}.txt", case.name));
    let (status, message) = manifest::compare(
        case.name,
        backend,
        result.verdict,
        expected,
        CANDLE_VERSION,
        &report.display().to_string(),
    );
    let cpu_msg = manifest::compare_cpu_vs_oracle(
        case.name,
        cpu_disagrees,
        expected,
        CANDLE_VERSION,
        &report.display().to_string(),
    );
    let (status, message) = match cfg.manifest.prediction(case.name, backend) {
        Some(p) if status == Status::NoExpectation => manifest::compare_prediction(
            case.name,
            backend,
            result.verdict,
            p,
            CANDLE_VERSION,
            &report.display().to_string(),
        ),
        _ => (status, message),
    };
    let (status, message) = match (status, cpu_msg) {
        (Status::AsExpected, Some(m)) => (Status::Changed, m),
        (Status::Changed, Some(m)) => (Status::Changed, format!("{message}; {m}")),
        (s, _) => (s, message),
    };
    result.status = status;
    result.message = message;
    Ok(result)
}

/// Runs every configured case; writes `reports/<backend>/suite.{json,txt}` last.
pub fn run_suite(cfg: &SuiteConfig) -> std::io::Result<SuiteReport> {
    let staging_root =
        std::env::temp_dir().join(format!("candle-repro-suite-{}", std::process::id()));
    let progress = Progress::new(cfg.cases.len());
    let start = Instant::now();
    let mut results = Vec::new();
    for (i, case) in cfg.cases.iter().enumerate() {
        progress.start(case.name);
        let staging = staging_root.join(case.name);
        std::fs::create_dir_all(&staging)?;
        let r = run_one(cfg, case, &staging);
        let _ = std::fs::remove_dir_all(&staging);
        let r = r?;
        progress.done(i, &r);
        results.push(r);
    }
    progress.finish();
    let _ = std::fs::remove_dir_all(&staging_root);
    let suite = SuiteReport {
        schema_version: SUITE_REPORT_SCHEMA,
        candle_version: CANDLE_VERSION.into(),
        target: cfg.target.clone(),
        command: cfg.command.clone(),
        timeout_seconds: cfg.timeout.as_secs(),
        wall_seconds: start.elapsed().as_secs_f64(),
        cases: results,
    };
    let folder = cfg.report_dir.join(&cfg.target.backend);
    write_atomic(
        &folder.join("suite.json"),
        &(serde_json::to_string_pretty(&suite).unwrap() + "\n"),
    )?;
    write_atomic(&folder.join("suite.txt"), &suite.table())?;
    Ok(suite)
}
