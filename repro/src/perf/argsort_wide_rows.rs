//! # argsort_wide_rows — the widest row `arg_sort_last_dim` sorts correctly on this device
//!
//! Upstream: huggingface/candle#2570 (Metal: wrong indices beyond 1024 columns) and
//! huggingface/candle#2361 (CUDA: fails beyond 8192 columns; fix proposed in #3955).
//!
//! For f32 and u32, ascending and descending: sort rows of every power-of-two width up to
//! `--max-width`, check every index against a plain-Rust oracle, then bisect between the last
//! correct and the first failing power of two for the exact widest correct width, and record how
//! the first failing width fails (an error, or silently wrong indices).

use super::{obj, OutputArgs};
use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use harness::bench::{BenchRecord, BenchReport};
use harness::device::{first_line, Environment, CANDLE_VERSION};
use harness::timing::TimingConfig;
use harness::Verdict;
use std::panic::{catch_unwind, AssertUnwindSafe};

pub const NAME: &str = "argsort_wide_rows";
pub const SNIPPET: &str = include_str!("../../snippets/src/bin/snippet_argsort_wide_rows.rs");
pub const PERF: super::Perf = super::Perf {
    name: NAME,
    snippet: SNIPPET,
    snippet_run: harness::case::SnippetRun::Check(snippet_check),
};

/// The CPU sorts every width correctly.
fn snippet_check(out: &str) -> Result<(), String> {
    match out.lines().find(|l| !l.ends_with(": 0 wrong indices")) {
        Some(l) => Err(format!("a width the CPU got wrong: `{l}`")),
        None => Ok(()),
    }
}

#[derive(clap::Parser, Debug)]
#[command(
    about = "Finds by bisection the widest row arg_sort_last_dim sorts correctly, and how wider rows fail."
)]
pub struct Args {
    #[command(flatten)]
    pub out: OutputArgs,
    /// Widest row to try (the sweep doubles up to it).
    #[arg(long, default_value_t = 1 << 20, value_parser = clap::value_parser!(u64).range(2..=(1 << 24)))]
    pub max_width: u64,
    /// Rows per sorted tensor.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub rows: u64,
}

#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Correct,
    Wrong {
        mismatched: usize,
        total: usize,
        first: (usize, u32, u32),
    },
    Error(String),
    Panic(String),
}

impl Outcome {
    fn describe(&self) -> String {
        match self {
            Outcome::Correct => "correct".into(),
            Outcome::Wrong {
                mismatched,
                total,
                first: (pos, want, got),
            } => {
                format!("silently wrong: {mismatched} of {total} indices differ (first at {pos}: want {want}, got {got})")
            }
            Outcome::Error(m) => format!("error: {m}"),
            Outcome::Panic(m) => format!("panic: {m}"),
        }
    }
}

/// Each row a shuffled permutation of 0..width: distinct values (exact in f32 up to 2^24), so the
/// sorted order is unique and the oracle is the inverse permutation.
fn permutation_rows(rows: usize, width: usize, seed: u64) -> Vec<Vec<u32>> {
    let mut s = seed;
    (0..rows)
        .map(|_| harness::host::shuffled_permutation(width, &mut s))
        .collect()
}

fn oracle(row: &[u32], ascending: bool) -> Vec<u32> {
    let mut pos = vec![0u32; row.len()];
    for (i, &v) in row.iter().enumerate() {
        pos[v as usize] = i as u32;
    }
    if !ascending {
        pos.reverse();
    }
    pos
}

fn sort_once(rows: &[Vec<u32>], dtype: DType, ascending: bool, device: &Device) -> Outcome {
    let (r, w) = (rows.len(), rows[0].len());
    let flat: Vec<u32> = rows.iter().flatten().copied().collect();
    // Uploaded in its own dtype: no candle cast between the data and the sort.
    let attempt = || -> candle_core::Result<Vec<Vec<u32>>> {
        let t = match dtype {
            DType::F32 => Tensor::from_vec(
                flat.iter().map(|&v| v as f32).collect::<Vec<_>>(),
                (r, w),
                device,
            )?,
            _ => Tensor::from_vec(flat.clone(), (r, w), device)?,
        };
        t.arg_sort_last_dim(ascending)?.to_vec2::<u32>()
    };
    let got = match catch_unwind(AssertUnwindSafe(attempt)) {
        Ok(Ok(g)) => g,
        Ok(Err(e)) => return Outcome::Error(first_line(&e.to_string())),
        Err(p) => return Outcome::Panic(harness::observe::panic_message(&*p)),
    };
    let (mut mismatched, mut first) = (0, None);
    for (row, got_row) in rows.iter().zip(&got) {
        let want = oracle(row, ascending);
        for (i, (&a, &b)) in want.iter().zip(got_row).enumerate() {
            if a != b {
                mismatched += 1;
                first.get_or_insert((i, a, b));
            }
        }
    }
    match first {
        None => Outcome::Correct,
        Some(first) => Outcome::Wrong {
            mismatched,
            total: r * w,
            first,
        },
    }
}

struct Search {
    dtype: DType,
    ascending: bool,
    widest_correct: usize,
    /// The first failing width and how it failed; None when every width up to the limit sorted.
    first_failure: Option<(usize, Outcome)>,
    widths_tried: usize,
    /// Set when the device stopped passing the canary after a failure.
    poisoned: Option<String>,
}

fn search(dtype: DType, ascending: bool, max_width: usize, rows: usize, device: &Device) -> Search {
    let mut tried = 0;
    let mut test = |w: usize| {
        tried += 1;
        sort_once(
            &permutation_rows(rows, w, w as u64),
            dtype,
            ascending,
            device,
        )
    };
    let mut good = 0;
    let mut bad: Option<(usize, Outcome)> = None;
    let mut w = 1;
    while w <= max_width {
        let o = test(w);
        if o == Outcome::Correct {
            good = w;
            w *= 2;
        } else {
            bad = Some((w, o));
            break;
        }
    }
    let mut poisoned = None;
    if let Some((mut hi, mut how)) = bad.clone() {
        // A failed launch can leave a GPU context unusable; bisecting on it would lie.
        let canary = harness::canary::run(device);
        if !canary.passed {
            poisoned = Some(canary.failures.join("; "));
        } else {
            let mut lo = good;
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                let o = test(mid);
                if o == Outcome::Correct {
                    lo = mid;
                } else {
                    hi = mid;
                    how = o;
                }
            }
            good = lo;
            bad = Some((hi, how));
        }
    }
    Search {
        dtype,
        ascending,
        widest_correct: good,
        first_failure: bad,
        widths_tried: tried,
        poisoned,
    }
}

pub fn run(
    args: &Args,
    device: &Device,
    timing: &TimingConfig,
    command: &str,
) -> Result<BenchReport> {
    let env = Environment::collect(device);
    let device_name = format!("{:#}", env.target);
    let max = args.max_width as usize;
    let mut searches = Vec::new();
    for dtype in [DType::F32, DType::U32] {
        for ascending in [true, false] {
            searches.push(search(dtype, ascending, max, args.rows as usize, device));
        }
    }
    let mut rows = Vec::new();
    let mut records = Vec::new();
    let mut findings = Vec::new();
    for s in &searches {
        let order = if s.ascending {
            "ascending"
        } else {
            "descending"
        };
        let (first_bad, how) = match &s.first_failure {
            Some((w, o)) => (w.to_string(), o.describe()),
            None => (
                "—".into(),
                format!("every width up to {max} sorted correctly"),
            ),
        };
        rows.push(vec![
            s.dtype.as_str().into(),
            order.into(),
            s.widest_correct.to_string(),
            first_bad,
            how.clone(),
        ]);
        records.push(BenchRecord {
            config: obj(&[
                ("dtype", s.dtype.as_str().into()),
                ("order", order.into()),
                ("rows", args.rows.into()),
                ("max_width", max.into()),
            ]),
            stats: None,
            ratio_to_baseline: None,
            baseline: None,
            counts: obj(&[
                ("widest_correct", s.widest_correct.into()),
                (
                    "first_failing",
                    s.first_failure.as_ref().map(|(w, _)| *w).into(),
                ),
                ("widths_tried", s.widths_tried.into()),
            ]),
            device: device_name.clone(),
            candle_version: CANDLE_VERSION.into(),
        });
        if let Some(p) = &s.poisoned {
            findings.push(format!("{} {order}: after the first failure the device failed the canary ({p}); the bisection was skipped", s.dtype.as_str()));
        }
    }
    let failing: Vec<&Search> = searches
        .iter()
        .filter(|s| s.first_failure.is_some())
        .collect();
    let summary = match failing.first() {
        Some(s) => {
            let (w, o) = s.first_failure.as_ref().unwrap();
            format!(
                "the widest correctly sorted row is {} columns ({} {}); at {w} columns: {}",
                s.widest_correct,
                s.dtype.as_str(),
                if s.ascending {
                    "ascending"
                } else {
                    "descending"
                },
                o.describe()
            )
        }
        None => format!("every width up to {max} sorted correctly, f32 and u32, both orders"),
    };
    let limits: Vec<usize> = failing.iter().map(|s| s.widest_correct).collect();
    if !limits.is_empty() && limits.iter().any(|&l| l != limits[0]) {
        findings.push("the limit differs between dtypes or orders: see the table".into());
    }
    let backend = env.target.backend.clone();
    let (verdict, explanation) = if matches!(device, Device::Cpu) {
        (
            Verdict::Inconclusive,
            format!("no accelerator was used. On cpu: {summary}."),
        )
    } else if failing.is_empty() {
        (Verdict::NotReproduced, format!("on {backend}, {summary}."))
    } else {
        (Verdict::Reproduced, format!("on {backend}, {summary}."))
    };
    Ok(BenchReport {
        bench: NAME.into(),
        title: "arg_sort_last_dim on wide rows: the widest row sorted correctly".into(),
        claim: "arg_sort_last_dim returns wrong indices on Metal beyond 1024 columns (#2570) and fails on CUDA beyond 8192 columns (#2361).".into(),
        source: "upstream issues huggingface/candle#2570 and #2361".into(),
        upstream: vec![
            "https://github.com/huggingface/candle/issues/2570".into(),
            "https://github.com/huggingface/candle/issues/2361".into(),
            "https://github.com/huggingface/candle/pull/3955 (proposed CUDA fix)".into(),
        ],
        environment: env,
        command: command.into(),
        timing: *timing,
        columns: ["dtype", "order", "widest correct", "first failing", "how it fails"].map(String::from).to_vec(),
        rows,
        records,
        findings,
        verdict,
        explanation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oracle_is_the_inverse_permutation() {
        assert_eq!(oracle(&[2, 0, 1], true), vec![1, 2, 0]);
        assert_eq!(oracle(&[2, 0, 1], false), vec![0, 2, 1]);
        let rows = permutation_rows(3, 50, 9);
        assert!(rows.iter().all(|r| {
            let mut s = r.clone();
            s.sort_unstable();
            s == (0..50).collect::<Vec<u32>>()
        }));
    }

    #[test]
    fn cpu_sorts_small_rows() {
        let s = search(DType::F32, false, 64, 2, &Device::Cpu);
        assert_eq!((s.widest_correct, s.first_failure), (64, None));
    }
}
