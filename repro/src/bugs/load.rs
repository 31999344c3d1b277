//! Reading bug files: parsing one into its front matter and sections, refusing what the format
//! does not allow (with the reason), and loading every file of the folder.

use super::front::{Action, Bug, Front};
use crate::error::Error;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The most a title may take: a GitHub issue list shows about this much.
pub const TITLE_MAX: usize = 140;
/// The most quoted source lines a text shows under "Cause".
pub const QUOTE_LINES_MAX: usize = 10;

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
    match (&f.from_source, f.claims.is_empty()) {
        (None, true) => {
            return Err("claims nothing (`claims` lists the ids and cases it explains)".into())
        }
        (Some(_), false) => {
            return Err(
                "`from_source` is for a question no run has observed: it claims nothing".into(),
            )
        }
        (Some(b), true)
            if f.action != Action::Question || !crate::manifest::BACKENDS.contains(&b.as_str()) =>
        {
            return Err(
                "`from_source` names a backend (cpu, cuda, metal) and goes with action `question`"
                    .into(),
            )
        }
        _ => {}
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
}
