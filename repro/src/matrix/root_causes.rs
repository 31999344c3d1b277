//! The root-cause rows: a root cause's ids folded together per backend across the versions, and
//! the release that introduced or fixed it.

use super::{Bug, Cell, PATCHED};
use crate::sweep::id::Claim;
use crate::sweep::known::RootCause;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A root cause on one backend across the versions: present where any of its ids shows, absent
/// where none shows and at least one id's op ran without it (an op the version lacks says
/// nothing), unknown where none ran.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RootCauseRow {
    pub root_cause: String,
    pub backend: String,
    /// Bug per version, in `Matrix::versions` order.
    pub bugs: Vec<Bug>,
    /// The first release that shows it after one that did not; `None` when no release before it
    /// was seen without it.
    pub introduced_in: Option<String>,
    /// The oldest release that shows it.
    pub first_seen: Option<String>,
    /// The first release without it after one that showed it.
    pub fixed_in: Option<String>,
}

pub(super) fn root_cause_rows(
    versions: &[String],
    cells: &[Cell],
    causes: &BTreeMap<String, RootCause>,
) -> Vec<RootCauseRow> {
    let mut rows = Vec::new();
    for (key, cause) in causes.iter().filter(|(k, _)| RootCause::is_bug(k)) {
        let members: Vec<String> = cause
            .ids
            .iter()
            .map(|id| Claim::parse(id).matrix_row())
            .collect();
        let mut backends: Vec<&str> = cells
            .iter()
            .filter(|c| members.contains(&c.case))
            .map(|c| c.backend.as_str())
            .collect();
        backends.sort();
        backends.dedup();
        for backend in backends {
            let bugs: Vec<Bug> = versions
                .iter()
                .map(|v| {
                    let of: Vec<&Bug> = cells
                        .iter()
                        .filter(|c| {
                            &c.version == v && c.backend == backend && members.contains(&c.case)
                        })
                        .map(|c| &c.bug)
                        .collect();
                    // An id whose op this version lacks (or did not run) says nothing; the
                    // others decide.
                    if of.contains(&&Bug::Present) {
                        Bug::Present
                    } else if of.contains(&&Bug::Absent) {
                        Bug::Absent
                    } else {
                        Bug::Unknown
                    }
                })
                .collect();
            // A backend the root cause is not known on, and where no version shows it, is noise.
            if !cause.backends.iter().any(|b| b == backend) && !bugs.contains(&Bug::Present) {
                continue;
            }
            // Releases only: `patched` is not a point in candle's history.
            let releases: Vec<(&String, &Bug)> = versions
                .iter()
                .zip(&bugs)
                .filter(|(v, b)| v.as_str() != PATCHED && **b != Bug::Unknown)
                .collect();
            let first_after = |from: &Bug, to: &Bug| {
                releases
                    .windows(2)
                    .find(|w| w[0].1 == from && w[1].1 == to)
                    .map(|w| w[1].0.clone())
            };
            rows.push(RootCauseRow {
                root_cause: key.clone(),
                backend: backend.to_string(),
                introduced_in: first_after(&Bug::Absent, &Bug::Present),
                first_seen: releases
                    .iter()
                    .find(|(_, b)| **b == Bug::Present)
                    .map(|(v, _)| (*v).clone()),
                fixed_in: first_after(&Bug::Present, &Bug::Absent),
                bugs,
            });
        }
    }
    rows
}
