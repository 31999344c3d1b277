//! A bug file's parts: the TOML front matter's types (action, severity, related threads, quotes
//! of candle's source) and the `Bug` they and the prose make up.

use super::UPSTREAM;
use serde::Deserialize;

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    NewIssue,
    Comment,
    PrExists,
    Question,
    NotABug,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::NewIssue => "new-issue",
            Action::Comment => "comment",
            Action::PrExists => "pr-exists",
            Action::Question => "question",
            Action::NotABug => "not-a-bug",
        }
    }
}

/// Worst first: the filing plan ranks by this.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    WrongTraining,
    WrongInference,
    Crash,
    Error,
    Performance,
    None,
}

impl Severity {
    /// The name a bug file writes.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::WrongTraining => "wrong-training",
            Severity::WrongInference => "wrong-inference",
            Severity::Crash => "crash",
            Severity::Error => "error",
            Severity::Performance => "performance",
            Severity::None => "none",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Severity::WrongTraining => "silent wrong values or missing gradients in training",
            Severity::WrongInference => "silent wrong values in a forward pass",
            Severity::Crash => "panic or a poisoned CUDA context",
            Severity::Error => "a valid call refused with an error",
            Severity::Performance => "performance",
            Severity::None => "nothing to fix",
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Related {
    /// A huggingface/candle issue or pull request number.
    pub n: u32,
    pub why: String,
}

/// Verbatim lines of a candle 0.11.1 file.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Quote {
    /// The path in candle's repository: `candle-core/src/tensor.rs`.
    pub file: String,
    /// `"2252-2254"` or `"471"`.
    pub lines: String,
    pub code: String,
}

impl Quote {
    /// The first and last line, 1-based, inclusive.
    pub fn range(&self) -> Result<(usize, usize), String> {
        let parse = |s: &str| {
            s.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("lines {:?} is not `a-b` or `a`", self.lines))
        };
        let (a, b) = match self.lines.split_once('-') {
            Some((a, b)) => (parse(a)?, parse(b)?),
            None => {
                let a = parse(&self.lines)?;
                (a, a)
            }
        };
        if b < a {
            return Err(format!("lines {:?} ends before it starts", self.lines));
        }
        Ok((a, b))
    }

    /// The quoted code lines, without the blank ones.
    pub fn code_lines(&self) -> Vec<&str> {
        self.code.lines().filter(|l| !l.trim().is_empty()).collect()
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Front {
    pub title: String,
    pub action: Action,
    #[serde(default)]
    pub target: Option<u32>,
    pub severity: Severity,
    /// Within a severity, the filing plan's order by the size of the effect (smaller first).
    #[serde(default = "middle_rank")]
    pub rank: u32,
    pub claims: Vec<String>,
    /// Optional: the claimed id whose shrunk input becomes the repro, where the automatic choice
    /// shows less of the bug.
    #[serde(default)]
    pub representative: Option<String>,
    #[serde(default)]
    pub related: Vec<Related>,
    #[serde(default)]
    pub searched: Vec<String>,
    #[serde(default)]
    pub by_design_risk: Option<String>,
    #[serde(default)]
    pub workaround: Option<String>,
    /// File names under `patches/candle-0.11.1/`.
    #[serde(default)]
    pub patches: Vec<String>,
    /// The repro makes one more, valid call on each GPU after the tested one, to show whether
    /// a failure left the device usable (a device-side assert poisons the context).
    #[serde(default)]
    pub later_call: bool,
    #[serde(default)]
    pub quote: Vec<Quote>,
    #[serde(default)]
    pub contract: Vec<Quote>,
    /// A question read from source about a backend no run has covered (`metal`): it claims no
    /// observation, and its text carries no program output.
    #[serde(default)]
    pub from_source: Option<String>,
}

fn middle_rank() -> u32 {
    50
}

/// One bug file.
#[derive(Clone, Debug, PartialEq)]
pub struct Bug {
    pub key: String,
    pub front: Front,
    /// The paragraph(s) before the first heading.
    pub lead: String,
    pub cause: String,
    pub fix: String,
    pub notes: String,
}

impl Bug {
    /// The upstream thread this bug's text goes to, where one exists: the issue it comments
    /// on, or the pull request that fixes it. A bug still to be filed has none.
    pub fn upstream_link(&self) -> Option<String> {
        match (self.front.action, self.front.target) {
            (Action::Comment, Some(n)) => Some(format!("{UPSTREAM}/issues/{n}")),
            (Action::PrExists, Some(n)) => Some(format!("{UPSTREAM}/pull/{n}")),
            _ => None,
        }
    }

    /// Keys under `not-a-bug-` record claims the runs refuted.
    pub fn is_bug(&self) -> bool {
        self.front.action != Action::NotABug
    }

    /// The text pasted upstream from this file, for checks over all of it.
    pub fn pasted_prose(&self) -> String {
        format!("{}\n{}\n{}", self.lead, self.cause, self.fix)
    }
}
