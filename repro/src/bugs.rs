//! Bug files: `repro/bugs/<root-cause>.md`, one per root cause, found by listing the folder.
//! TOML front matter (what to do upstream, what the file claims, the quotes of candle's source)
//! between `+++` lines, then the prose a maintainer reads: a lead, `## Cause`, `## Fix`, and
//! `## Notes` for this project only. `repro/bugs/README.md` describes the format; this module
//! reads it, refuses a malformed file with one line naming it, and checks the quotes against
//! candle's published sources.

use crate::error::Error;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const DIR: &str = "repro/bugs";
/// The most a title may take: a GitHub issue list shows about this much.
pub const TITLE_MAX: usize = 140;
/// The most quoted source lines a text shows under "Cause".
pub const QUOTE_LINES_MAX: usize = 10;

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

/// The upstream repository; links go only there.
pub const UPSTREAM: &str = "https://github.com/huggingface/candle";

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

/// Parses one bug file; `key` is its name without `.md`.
pub fn parse(key: &str, text: &str) -> Result<Bug, String> {
    let rest = text
        .strip_prefix("+++\n")
        .ok_or("does not start with a `+++` line (TOML front matter)")?;
    let end = rest
        .find("\n+++\n")
        .ok_or("has no closing `+++` line after its front matter")?;
    let front: Front = toml::from_str(&rest[..end + 1]).map_err(|e| e.message().to_string())?;
    let body = &rest[end + 5..];
    let mut sections: BTreeMap<String, String> = BTreeMap::new();
    let mut lead = String::new();
    let mut current: Option<String> = None;
    for line in body.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            let h = h.trim().to_string();
            if !["Cause", "Fix", "Notes"].contains(&h.as_str()) {
                return Err(format!(
                    "has a section `## {h}`: only Cause, Fix and Notes are read"
                ));
            }
            if sections.contains_key(&h) {
                return Err(format!("has two `## {h}` sections"));
            }
            sections.insert(h.clone(), String::new());
            current = Some(h);
            continue;
        }
        let into = match &current {
            Some(h) => sections.get_mut(h).expect("inserted"),
            None => &mut lead,
        };
        into.push_str(line);
        into.push('\n');
    }
    let take = |s: &mut BTreeMap<String, String>, h: &str| {
        s.remove(h).unwrap_or_default().trim().to_string()
    };
    let bug = Bug {
        key: key.to_string(),
        lead: lead.trim().to_string(),
        cause: take(&mut sections, "Cause"),
        fix: take(&mut sections, "Fix"),
        notes: take(&mut sections, "Notes"),
        front,
    };
    validate(&bug)?;
    Ok(bug)
}

/// What the format promises beyond its types.
fn validate(b: &Bug) -> Result<(), String> {
    let f = &b.front;
    let chars = f.title.chars().count();
    if chars > TITLE_MAX {
        return Err(format!(
            "title has {chars} characters (at most {TITLE_MAX})"
        ));
    }
    match (f.action, f.target) {
        (Action::Comment | Action::PrExists, None) => {
            return Err(format!(
                "action `{}` needs `target` (the issue or PR number)",
                f.action.as_str()
            ))
        }
        (Action::NewIssue | Action::NotABug, Some(t)) => {
            return Err(format!(
                "action `{}` takes no `target` (got {t}); list it under `related`",
                f.action.as_str()
            ))
        }
        _ => {}
    }
    if (f.action == Action::NotABug) != b.key.starts_with("not-a-bug-") {
        return Err("action `not-a-bug` and a `not-a-bug-` key go together".into());
    }
    if let Some(r) = &f.representative {
        // `<backend>:<id>` names the run whose input to use.
        let id = r.split_once(':').map_or(r.as_str(), |(_, id)| id);
        if !f.claims.iter().any(|c| c == id) {
            return Err(format!("representative `{r}` is not among its claims"));
        }
    }
    if f.claims.is_empty() {
        return Err("claims nothing (`claims` lists the ids and cases it explains)".into());
    }
    if b.lead.is_empty() {
        return Err("has no lead paragraph before its first heading".into());
    }
    if b.is_bug() && (b.cause.is_empty() || b.fix.is_empty()) {
        return Err("a bug needs `## Cause` and `## Fix`".into());
    }
    let quoted: usize = f.quote.iter().map(|q| q.code_lines().len()).sum();
    if quoted > QUOTE_LINES_MAX {
        return Err(format!(
            "quotes {quoted} code lines (at most {QUOTE_LINES_MAX})"
        ));
    }
    for q in f.quote.iter().chain(&f.contract) {
        q.range().map_err(|e| format!("{}: {e}", q.file))?;
    }
    for word in INTERNAL_WORDS {
        if contains_word(&b.pasted_prose(), word) {
            return Err(format!(
                "its pasted prose says `{word}`, a word of this project a maintainer does not know"
            ));
        }
    }
    if let Some(at) = source_reference(&b.pasted_prose()) {
        return Err(format!(
            "its pasted prose cites `{at}`: cite source lines in a `[[quote]]`, which is checked"
        ));
    }
    if b.pasted_prose().contains("](") && b.pasted_prose().contains("](.") {
        return Err("its pasted prose has a relative link".into());
    }
    Ok(())
}

/// Words of this project that mean nothing upstream.
pub const INTERNAL_WORDS: &[&str] = &["sweep", "shrunk", "oracle", "root-causes.toml", "repro/"];

fn contains_word(text: &str, word: &str) -> bool {
    text.to_lowercase().contains(word)
}

/// The first `name.rs:123` (or `.cu`, `.metal`, `.cuh`) in `text`.
pub fn source_reference(text: &str) -> Option<String> {
    for ext in [".rs:", ".cu:", ".cuh:", ".metal:"] {
        let mut from = 0;
        while let Some(i) = text[from..].find(ext) {
            let at = from + i;
            let after = &text[at + ext.len()..];
            if after.starts_with(|c: char| c.is_ascii_digit()) {
                let start = text[..at]
                    .rfind(|c: char| c.is_whitespace() || c == '`' || c == '(')
                    .map(|s| s + 1)
                    .unwrap_or(0);
                let digits: String = after
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '-')
                    .collect();
                return Some(format!("{}{ext}{digits}", &text[start..at]));
            }
            from = at + ext.len();
        }
    }
    None
}

/// Every bug file under `dir`, by key. A file that does not parse fails the load with its name.
pub fn load(dir: &Path) -> Result<BTreeMap<String, Bug>, Error> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::BadInput(format!("cannot read {}: {e}", dir.display())))?;
    let mut out = BTreeMap::new();
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .filter(|p| p.file_name().is_some_and(|n| n != "README.md"))
        .collect();
    paths.sort();
    for p in paths {
        let key = p
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let text = std::fs::read_to_string(&p)
            .map_err(|e| Error::BadInput(format!("{}: {e}", p.display())))?;
        let bug =
            parse(&key, &text).map_err(|e| Error::BadInput(format!("{}: {e}", p.display())))?;
        out.insert(key, bug);
    }
    if out.is_empty() {
        return Err(Error::BadInput(format!(
            "{} holds no bug file",
            dir.display()
        )));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// candle's sources, as published: the quotes are checked against them and linked at the commit
// they were published from.

/// The published crates of the pinned candle in cargo's registry: `candle-core` → its folder.
pub struct Sources {
    pub version: String,
    crates: BTreeMap<String, PathBuf>,
}

impl Sources {
    /// Finds `<CARGO_HOME>/registry/src/*/<crate>-<version>` for candle's crates.
    pub fn find(version: &str) -> Result<Sources, Error> {
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
            .ok_or_else(|| Error::BadInput("neither CARGO_HOME nor HOME is set".into()))?;
        let src = home.join("registry").join("src");
        let mut crates = BTreeMap::new();
        for index in std::fs::read_dir(&src)
            .map_err(|e| {
                Error::BadInput(format!(
                    "cannot read cargo's registry sources ({e}); `cargo fetch` brings them"
                ))
            })?
            .flatten()
        {
            for name in [
                "candle-core",
                "candle-nn",
                "candle-kernels",
                "candle-metal-kernels",
            ] {
                let dir = index.path().join(format!("{name}-{version}"));
                if dir.is_dir() {
                    crates.insert(name.to_string(), dir);
                }
            }
        }
        Ok(Sources {
            version: version.to_string(),
            crates,
        })
    }

    /// The sources of the candle release the workspace pins.
    pub fn pinned() -> Result<Sources, Error> {
        Sources::find(harness::device::CANDLE_VERSION)
    }

    /// The local copy of `candle-core/src/x.rs`.
    pub fn path(&self, file: &str) -> Result<PathBuf, String> {
        let (krate, rest) = file
            .split_once('/')
            .ok_or_else(|| format!("{file}: not a path in candle's repository"))?;
        let dir = self.crates.get(krate).ok_or_else(|| {
            format!(
                "{file}: {krate} {} is not in cargo's registry (`cargo fetch` brings it)",
                self.version
            )
        })?;
        Ok(dir.join(rest))
    }

    /// The commit a crate was published from (its `.cargo_vcs_info.json`).
    pub fn commit(&self, file: &str) -> Result<String, String> {
        let krate = file.split('/').next().unwrap_or_default();
        let dir = self
            .crates
            .get(krate)
            .ok_or_else(|| format!("{krate} {} is not in cargo's registry", self.version))?;
        let text = std::fs::read_to_string(dir.join(".cargo_vcs_info.json"))
            .map_err(|e| format!("{krate}: no .cargo_vcs_info.json: {e}"))?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        v["git"]["sha1"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{krate}: .cargo_vcs_info.json names no commit"))
    }

    /// A link to the quoted lines on GitHub at the published commit.
    pub fn link(&self, q: &Quote) -> Result<String, String> {
        let (a, b) = q.range()?;
        let sha = self.commit(&q.file)?;
        let lines = if a == b {
            format!("L{a}")
        } else {
            format!("L{a}-L{b}")
        };
        Ok(format!("{UPSTREAM}/blob/{sha}/{}#{lines}", q.file))
    }

    /// The quote's code lines with a `…` line wherever source lines between two quoted lines are
    /// left out (indented like the line after the gap).
    pub fn elided(&self, q: &Quote) -> Result<String, String> {
        self.check(q)?;
        let (a, b) = q.range()?;
        let text = std::fs::read_to_string(self.path(&q.file)?).map_err(|e| e.to_string())?;
        let cited: Vec<&str> = text.lines().skip(a - 1).take(b - a + 1).collect();
        let mut out = Vec::new();
        let mut at = 0;
        for want in q.code_lines() {
            let i = at
                + cited[at..]
                    .iter()
                    .position(|l| l.trim_end() == want.trim_end())
                    .expect("checked");
            if !out.is_empty() && i > at {
                let indent = want.len() - want.trim_start().len();
                let mark = if q.file.ends_with(".rs") {
                    "// …"
                } else {
                    "// ..."
                };
                out.push(format!("{}{mark}", " ".repeat(indent)));
            }
            out.push(want.trim_end().to_string());
            at = i + 1;
        }
        Ok(out.join("\n"))
    }

    /// Whether every quoted code line is one of the cited lines, in order (lines may be left
    /// out, not changed; trailing spaces do not count).
    pub fn check(&self, q: &Quote) -> Result<(), String> {
        let (a, b) = q.range()?;
        let p = self.path(&q.file)?;
        let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", q.file))?;
        let lines: Vec<&str> = text.lines().collect();
        if b > lines.len() {
            return Err(format!(
                "{}:{}: the file has {} lines",
                q.file,
                q.lines,
                lines.len()
            ));
        }
        let cited = &lines[a - 1..b];
        let mut at = 0;
        for want in q.code_lines() {
            let want = want.trim_end();
            match cited[at..].iter().position(|l| l.trim_end() == want) {
                Some(i) => at += i + 1,
                None => {
                    return Err(format!(
                        "{}:{}: `{}` is not among these lines of candle {} (in this order)",
                        q.file,
                        q.lines,
                        want.trim(),
                        self.version
                    ))
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "+++\ntitle = \"t\"\naction = \"new-issue\"\nseverity = \"crash\"\nclaims = [\"x\"]\n+++\n\nLead.\n\n## Cause\n\nBecause.\n\n## Fix\n\nThis.\n";

    #[test]
    fn a_file_reads_into_its_parts() {
        let b = parse("k", GOOD).unwrap();
        assert_eq!(b.lead, "Lead.");
        assert_eq!(b.cause, "Because.");
        assert_eq!(b.fix, "This.");
        assert_eq!(b.front.action, Action::NewIssue);
    }

    #[test]
    fn malformed_files_are_refused_with_the_reason() {
        let cases = [
            (
                GOOD.replace("action = \"new-issue\"", "action = \"comment\""),
                "needs `target`",
            ),
            (
                GOOD.replace("## Fix\n\nThis.\n", ""),
                "`## Cause` and `## Fix`",
            ),
            (GOOD.replace("Lead.", "The sweep saw it."), "sweep"),
            (GOOD.replace("Because.", "See ops.rs:12."), "ops.rs:12"),
            (
                GOOD.replace("## Cause", "## Upstream"),
                "only Cause, Fix and Notes",
            ),
            (
                GOOD.replace("title = \"t\"", &format!("title = \"{}\"", "x".repeat(141))),
                "141 characters",
            ),
            (
                GOOD.replace("claims = [\"x\"]", "claims = []"),
                "claims nothing",
            ),
            (GOOD.replace("Because.", "[a](../../x.md)"), "relative link"),
        ];
        for (text, why) in cases {
            let e = parse("k", &text).unwrap_err();
            assert!(e.contains(why), "{e:?} should say {why:?}");
        }
        assert!(parse("not-a-bug-x", GOOD).is_err());
    }

    #[test]
    fn source_references_are_found_in_prose() {
        assert_eq!(
            source_reference("as in `cpu_backend/mod.rs:754` here").as_deref(),
            Some("cpu_backend/mod.rs:754")
        );
        assert_eq!(
            source_reference("indexing.cu:55-66 x").as_deref(),
            Some("indexing.cu:55-66")
        );
        assert_eq!(source_reference("mod.rs: nothing"), None);
    }

    #[test]
    fn a_quote_must_be_the_cited_lines() {
        let dir = std::env::temp_dir().join(format!("bug-quotes-{}", std::process::id()));
        let krate = dir.join("candle-core-9.9.9");
        std::fs::create_dir_all(krate.join("src")).unwrap();
        std::fs::write(
            krate.join("src/a.rs"),
            "fn a() {\n    let x = 1;\n    let y = 2;\n}\n",
        )
        .unwrap();
        let s = Sources {
            version: "9.9.9".into(),
            crates: BTreeMap::from([("candle-core".to_string(), krate)]),
        };
        let q = |lines: &str, code: &str| Quote {
            file: "candle-core/src/a.rs".into(),
            lines: lines.into(),
            code: code.into(),
        };
        assert!(s.check(&q("1-3", "fn a() {\n    let y = 2;\n")).is_ok());
        // Changed, out of the range, out of order, past the end.
        assert!(s.check(&q("1-3", "    let y = 3;\n")).is_err());
        assert!(s.check(&q("1-2", "    let y = 2;\n")).is_err());
        assert!(s
            .check(&q("1-3", "    let y = 2;\n    let x = 1;\n"))
            .is_err());
        assert!(s.check(&q("3-9", "}\n")).is_err());
        // A line left out is marked where it was.
        assert_eq!(
            s.elided(&q("1-4", "fn a() {\n    let y = 2;\n}\n"))
                .unwrap(),
            "fn a() {\n    // …\n    let y = 2;\n}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
