//! The **Versions** line: which candle releases show a root cause, per backend, from the
//! version matrix, and whether the patched pin still shows it.

use super::{Data, MatrixBug};
use crate::sweep::id::Claim;
use crate::sweep::known::RootCause;
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// Consecutive versions as ranges: `0.9.2–0.11.1`, or a list where a version is missing.
pub(super) fn version_span(all: &[String], shown: &[&str]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run: Vec<&str> = Vec::new();
    let flush = |run: &mut Vec<&str>, parts: &mut Vec<String>| {
        match run.len() {
            0 => {}
            1 | 2 => parts.extend(run.iter().map(|v| v.to_string())),
            _ => parts.push(format!("{}–{}", run[0], run[run.len() - 1])),
        }
        run.clear();
    };
    for v in all {
        if shown.contains(&v.as_str()) {
            run.push(v);
        } else {
            flush(&mut run, &mut parts);
        }
    }
    flush(&mut run, &mut parts);
    parts.join(", ")
}

/// Which candle releases show the root cause, per backend, in one line: from the version
/// matrix, every claimed id folded together (shows where any did, absent where none did and one
/// ran). Then whether the patched pin still shows it.
pub fn versions_line(r: &RootCause, data: &Data) -> String {
    if let Some(b) = &r.bug.front.from_source {
        return format!(
            "read from candle {}'s source; not run on {}",
            data.pinned,
            super::evidence::backend_name(b)
        );
    }
    let releases: Vec<String> = data
        .matrix
        .versions
        .iter()
        .filter(|v| v.as_str() != crate::matrix::PATCHED)
        .cloned()
        .collect();
    if releases.is_empty() {
        return "no version matrix was recorded".into();
    }
    let mut parts = Vec::new();
    let mut patched: BTreeSet<&str> = BTreeSet::new();
    for b in &r.backends {
        let state = |v: &str| -> &str {
            let mut any_absent = false;
            for id in &r.ids {
                match data.matrix.bug.get(&(
                    Claim::parse(id).matrix_row(),
                    b.clone(),
                    v.to_string(),
                )) {
                    Some(MatrixBug::Present) => return "present",
                    Some(MatrixBug::Absent) => any_absent = true,
                    _ => {}
                }
            }
            if any_absent {
                "absent"
            } else {
                "unknown"
            }
        };
        let shows: Vec<&str> = releases
            .iter()
            .map(String::as_str)
            .filter(|v| state(v) == "present")
            .collect();
        let absent: Vec<&str> = releases
            .iter()
            .map(String::as_str)
            .filter(|v| state(v) == "absent")
            .collect();
        let ran = shows.len() + absent.len();
        let mut text = if ran == 0 {
            // No release was run for these ids: "not shown" would read as "does not reproduce".
            format!("{b}: seen on {}; older releases not run", data.pinned)
        } else if shows.is_empty() {
            format!("{b}: not shown in the {ran} releases that ran")
        } else {
            format!("{b}: shows in {}", version_span(&releases, &shows))
        };
        let first = releases.iter().position(|v| state(v) == "present");
        let before: Vec<&str> = releases[..first.unwrap_or(0)]
            .iter()
            .map(String::as_str)
            .filter(|v| state(v) == "absent")
            .collect();
        if !before.is_empty() {
            let _ = write!(text, " (not in {})", version_span(&releases, &before));
        } else if !shows.is_empty() && absent.is_empty() {
            let oldest_run = releases
                .iter()
                .position(|v| state(v) != "unknown")
                .unwrap_or(0);
            if oldest_run == 0 {
                let _ = write!(text, " (every release tested)");
            } else {
                let _ = write!(text, " (the oldest release run on {b})");
            }
        }
        let after: Vec<&str> = match first {
            Some(f) => releases[f..]
                .iter()
                .map(String::as_str)
                .filter(|v| state(v) == "absent")
                .collect(),
            None => vec![],
        };
        if !after.is_empty() {
            let _ = write!(text, "; absent again in {}", after.join(", "));
        }
        parts.push(text);
        let p = state(crate::matrix::PATCHED);
        patched.insert(p);
    }
    let mut line = parts.join("; ");
    let has_patch = !r.bug.front.patches.is_empty();
    if has_patch
        && data
            .matrix
            .versions
            .iter()
            .any(|v| v == crate::matrix::PATCHED)
    {
        let _ = write!(
            line,
            "; 0.11.1 with the patches applied: {}",
            if patched.len() == 1 && patched.contains("absent") {
                "gone"
            } else if patched.contains("present") {
                "still shows"
            } else {
                "not run"
            }
        );
    }
    line
}
