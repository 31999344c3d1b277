//! What a text shows as evidence: the environment line, the suite cases, the table of claimed
//! symptoms, and the folded details (the program's recorded GPU output, related issues, the
//! patch, the searches).

use super::outputs::recorded_output_of;
use super::text::{fenced, issue_link};
use super::{Data, Repro, SweepRun, FOLD};
use crate::sweep::known::RootCause;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Compute capability is a property of the chip; stated for the GPUs this project ran on when a
/// run did not record it.
fn known_compute_capability(name: &str) -> Option<&'static str> {
    (name.contains("H100") || name.contains("H200")).then_some("9.0")
}

/// The environment of a run, in one line.
pub fn environment_line(run: &SweepRun, data: &Data) -> String {
    let t = &run.target;
    let os = t.os.clone().or_else(|| {
        // The suite, run on the same device model and driver, records its OS.
        data.cases
            .values()
            .find(|c| {
                c.target.backend == t.backend
                    && c.target.name == t.name
                    && c.target.driver == t.driver
            })
            .and_then(|c| c.os.clone())
    });
    let mut parts = vec![format!("candle {}", run.candle_version)];
    if let Some(os) = os {
        parts.push(os);
    }
    if let Some(r) = &t.rustc {
        parts.push(r.split(" (").next().unwrap_or(r).to_string());
    }
    if t.backend == "cuda" {
        let cc = t
            .compute_capability
            .clone()
            .or_else(|| known_compute_capability(&t.name).map(str::to_string));
        let mut gpu = t.name.clone();
        if let Some(cc) = cc {
            let _ = write!(gpu, " (compute capability {cc})");
        }
        parts.push(gpu);
        if let Some(d) = &t.driver {
            parts.push(format!("driver {d}"));
        }
        match (&t.cuda_driver_api, &t.cuda_toolkit) {
            (Some(a), Some(b)) if a == b => parts.push(format!("CUDA {a} (driver and toolkit)")),
            (a, b) => {
                if let Some(a) = a {
                    parts.push(format!("CUDA driver API {a}"));
                }
                if let Some(b) = b {
                    parts.push(format!("CUDA toolkit {b}"));
                }
            }
        }
    } else {
        parts.push(t.name.clone());
    }
    parts.join(" · ")
}

/// The **Environment** line of the pasted part.
pub(super) fn environment(md: &mut String, r: &RootCause, run: &SweepRun, data: &Data) {
    // The machine of the repro's run and, for a CPU run, of every other backend the text
    // says the bug shows on (the lead or the Versions line may state a CUDA result). A GPU
    // run computed its CPU rows on its own host, which its line already names.
    let mut envs = vec![environment_line(run, data)];
    let others = if run.target.backend == "cpu" {
        r.backends.as_slice()
    } else {
        &[]
    };
    for b in others {
        if let Some(other) = data
            .sweeps
            .get(b)
            .filter(|o| o.target.backend != run.target.backend)
        {
            let line = environment_line(other, data);
            let same_candle = format!("candle {} · ", run.candle_version);
            envs.push(format!(
                "{b}: {}",
                line.strip_prefix(&same_candle).unwrap_or(&line)
            ));
        }
    }
    let _ = write!(md, "\n**Environment**: {}.\n", envs.join("; "));
}

/// The suite cases among the ids: the steps where a backend disagrees with the oracle.
pub(super) fn cases_section(r: &RootCause, data: &Data) -> String {
    let mut md = String::new();
    for id in &r.ids {
        let Some(case) = id.strip_prefix("case:") else {
            continue;
        };
        // The accelerator's report carries the CPU's answer too.
        let Some(((_, backend), run)) = data
            .cases
            .iter()
            .filter(|((c, _), _)| c == case)
            .max_by_key(|((_, b), _)| b.as_str() != "cpu")
        else {
            continue;
        };
        let _ = writeln!(
            md,
            "\nThe case `{case}` (verdict on {backend}: `{}`, candle {}); the steps where a backend disagrees with the expected answer:\n",
            run.verdict, run.candle_version
        );
        if run.differing.is_empty() {
            md.push_str("- none: every step agrees on every backend\n");
        }
        for st in &run.differing {
            let _ = writeln!(
                md,
                "- `{}` ({}): `{}`\n  - expected: `{}`\n  - cpu: `{}`\n  - {backend}: `{}`",
                st.variant, st.about, st.code, st.expected, st.cpu, st.target
            );
        }
    }
    md
}

/// What each claimed id is, where it showed and since when, for the evidence fold.
fn claims_table(r: &RootCause, data: &Data) -> String {
    let mut titles: BTreeMap<&str, &str> = BTreeMap::new();
    for run in data.sweeps.values() {
        for d in &run.divergences {
            titles.entry(d.id.as_str()).or_insert(d.title.as_str());
        }
    }
    let mut md = String::from("| symptom | category | backends |\n|---|---|---|\n");
    for id in &r.ids {
        let (what, category, backends) = match id.strip_prefix("case:") {
            Some(case) => (
                format!("the case `{case}`"),
                "suite case".to_string(),
                // A suite run on the CPU alone has no device to compare and says
                // "inconclusive", which would read as a verdict on the CPU: left out.
                data.suite
                    .get(case)
                    .into_iter()
                    .flatten()
                    .filter(|(_, e)| e.verdict != "inconclusive")
                    .map(|(b, e)| format!("{b}: {}", e.verdict))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            None => {
                let k = data.known.entries.get(id);
                (
                    // A run's title ends with the backends that run saw; the column has them all.
                    titles
                        .get(id.as_str())
                        .map(|t| {
                            t.rsplit_once(" on ").map_or(*t, |(w, _)| w).replace(
                                "propagates them unlike PyTorch",
                                "does not handle them as PyTorch does",
                            )
                        })
                        .unwrap_or_else(|| format!("`{id}`")),
                    k.map(|k| k.category.clone()).unwrap_or_default(),
                    k.map(|k| k.backends.join(", ")).unwrap_or_default(),
                )
            }
        };
        let _ = writeln!(md, "| {what} | {category} | {backends} |");
    }
    md
}

/// Heads the program's recorded GPU output in the details.
pub(super) const OUTPUT_HEAD: &str = "The program above, run on a GPU machine";

/// The evidence under the `<details>` fold, which ends the text.
pub(super) fn details(
    md: &mut String,
    key: &str,
    r: &RootCause,
    data: &Data,
    repro: Option<(&Repro, &str)>,
) {
    let b = &r.bug;
    let f = &b.front;
    let mut parts = vec![if f.from_source.is_some() {
        "what it was read from"
    } else {
        "every symptom observed"
    }];
    if recorded_output_of(data, key, repro).is_some() {
        parts.push("the program's output on a GPU machine");
    }
    if !f.patches.is_empty() {
        parts.push("the patch");
    }
    if !f.searched.is_empty() {
        parts.push("the searches");
    }
    let _ = write!(
        md,
        "\n{FOLD}<summary>Details: {}</summary>\n\n",
        parts.join(", ")
    );
    match &f.from_source {
        // A question read from source claims no observation: no symptoms to list.
        Some(b) => {
            let _ = writeln!(
                md,
                "Read from candle {}'s source; no run on {} has observed it yet.",
                data.pinned,
                backend_name(b)
            );
        }
        None => {
            let _ = write!(
                md,
                "Symptoms of this one cause, observed on candle {}:\n\n{}",
                data.pinned,
                claims_table(r, data)
            );
        }
    }
    if b.is_bug() {
        md.push_str(&cases_section(r, data));
    }
    if let Some((output, exit, machine)) = recorded_output_of(data, key, repro) {
        // A program whose table shows the CPU alone opens no GPU: say so beside its output.
        let opens_gpu = repro.is_some_and(|(_, src)| src.contains("Device::new_cuda"));
        let cpu_only = if opens_gpu {
            ""
        } else {
            "; the program opens no GPU, so it prints the CPU's answer only"
        };
        let _ = write!(
            md,
            "\n{OUTPUT_HEAD} ({machine}; exit code {exit}{cpu_only}):\n\n{}",
            fenced("text", output)
        );
    }
    if !f.related.is_empty() {
        md.push_str("\nRelated:\n\n");
        for x in &f.related {
            let _ = writeln!(md, "- {}: {}", issue_link(x.n), x.why);
        }
    }
    for p in &f.patches {
        if let Some(text) = data.patches.get(p) {
            let _ = write!(md, "\nPatch `{p}` (applies to candle-core/candle-nn 0.11.1 with `git apply` in the crate):\n\n{}", fenced("diff", text));
        }
    }
    if !f.searched.is_empty() {
        let q: Vec<String> = f.searched.iter().map(|s| format!("\"{s}\"")).collect();
        let _ = write!(
            md,
            "\nSearched candle's issues and pull requests for: {}.\n",
            q.join(", ")
        );
    }
    md.push_str("\n</details>\n");
}

/// A backend as a sentence names it.
pub(super) fn backend_name(b: &str) -> &str {
    match b {
        "cpu" => "the CPU",
        "cuda" => "CUDA",
        "metal" => "Metal",
        other => other,
    }
}
