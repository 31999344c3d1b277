//! What a sweep found, as the parent assembles it from its children: one `Divergence` per id,
//! one `OpSummary` per op, and the `SweepReport` that the table, the JSON, the manifest check and
//! the emitted texts are made from.

use super::exec::Category;
use super::known::Status;
use super::Shrunk;
use harness::device::DeviceInfo;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Divergence {
    pub id: String,
    pub op: String,
    pub pass: String,
    pub category: Category,
    pub backends: BTreeSet<String>,
    pub dtypes: BTreeSet<String>,
    pub cells: usize,
    pub title: String,
    pub repro: Option<Shrunk>,
    /// What killed the process, for a divergence seen only as a dead child.
    pub death: Option<String>,
    pub status: Option<Status>,
    pub status_message: String,
    pub upstream: Option<String>,
}

impl Divergence {
    /// A divergence before any cell is counted: no backends, dtypes, cells or status yet.
    pub fn new(id: &str, op: &str, pass: &str, category: Category) -> Self {
        Divergence {
            id: id.into(),
            op: op.into(),
            pass: pass.into(),
            category,
            backends: BTreeSet::new(),
            dtypes: BTreeSet::new(),
            cells: 0,
            title: String::new(),
            repro: None,
            death: None,
            status: None,
            status_message: String::new(),
            upstream: None,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OpSummary {
    pub cells_planned: usize,
    pub cells_run: usize,
    pub cells_diverging: usize,
    pub completed: bool,
    /// The index, condition or target dtypes this build swept the op with (a build for candle
    /// before 0.9.2 has no i16/i32), so the version matrix can tell "agrees" from "not swept".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aux_dtypes: Vec<String>,
    /// Why the op did not run every planned cell: a child crashed or hung outside a cell, or
    /// the budget ran out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<String>,
}

/// The version of `sweep.json`. Readers refuse a newer one; a report written before the field
/// existed is version 1.
pub const SWEEP_REPORT_SCHEMA: u32 = 1;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SweepReport {
    #[serde(default = "harness::schema::v1")]
    pub schema_version: u32,
    pub candle_version: String,
    pub target: DeviceInfo,
    pub backends: Vec<String>,
    pub command: String,
    pub seed: u64,
    pub random_cells: usize,
    pub wall_seconds: f64,
    pub budget_seconds: u64,
    /// `--partial`: the caller accepts ops that did not finish.
    pub partial_allowed: bool,
    pub ops: BTreeMap<String, OpSummary>,
    pub divergences: Vec<Divergence>,
    /// Manifest entries expected on a backend that ran but not seen.
    pub missing: Vec<(String, Status, String)>,
}

impl harness::schema::Versioned for SweepReport {
    const SCHEMA: u32 = SWEEP_REPORT_SCHEMA;
    const KIND: &'static str = "sweep report";
    fn schema_version(&self) -> u32 {
        self.schema_version
    }
}

impl SweepReport {
    /// Reads a `sweep.json` the sweep wrote: the one way every reader (STATUS, the version
    /// matrix, collect, the upstream texts) gets at a sweep's results.
    pub fn read(path: &std::path::Path) -> Result<SweepReport, String> {
        harness::schema::read(path)
    }

    pub fn parse(text: &str) -> Result<SweepReport, String> {
        harness::schema::parse(text)
    }

    /// Every divergence is a known one, every known one still shows, and every op asked for
    /// ran to its end (unless the caller asked for a partial run).
    pub fn as_expected(&self) -> bool {
        self.divergences
            .iter()
            .all(|d| d.status == Some(Status::Expected))
            && self.missing.iter().all(|(_, s, _)| *s == Status::NotRun)
            && (self.partial_allowed || self.incomplete().is_empty())
    }

    /// Ops that did not run every planned cell, with why.
    pub fn incomplete(&self) -> Vec<(&str, &str)> {
        self.ops
            .iter()
            .filter_map(|(k, o)| o.incomplete.as_deref().map(|r| (k.as_str(), r)))
            .collect()
    }

    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let cells: usize = self.ops.values().map(|o| o.cells_run).sum();
        let mut out = format!(
            "sweep on {} ({}) · candle {} · {} cells in {:.1}s\ncommand: {}\n\n",
            self.target.location,
            self.target.name,
            self.candle_version,
            cells,
            self.wall_seconds,
            self.command
        );
        let w = self
            .divergences
            .iter()
            .map(|d| d.id.len())
            .max()
            .unwrap_or(10)
            .max(10);
        let _ = writeln!(
            out,
            "{:<w$}  {:<14}  {:<10}  {:>5}  status",
            "divergence", "category", "backends", "cells"
        );
        for d in &self.divergences {
            let b: Vec<&str> = d.backends.iter().map(String::as_str).collect();
            let _ = writeln!(
                out,
                "{:<w$}  {:<14}  {:<10}  {:>5}  {}",
                d.id,
                d.category.as_str(),
                b.join("+"),
                d.cells,
                d.status_message
            );
        }
        for (id, _, msg) in &self.missing {
            let _ = writeln!(out, "{id:<w$}  {:<14}  {:<10}  {:>5}  {msg}", "-", "-", 0);
        }
        let incomplete = self.incomplete();
        let _ = writeln!(
            out,
            "\n{} distinct divergences observed, ops swept: {} of {}",
            self.divergences.len(),
            self.ops.len() - incomplete.len(),
            self.ops.len(),
        );
        for (op, why) in incomplete {
            let _ = writeln!(out, "not completed: {op}: {why}");
        }
        out
    }
}
