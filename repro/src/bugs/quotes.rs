//! candle's sources, as published: the quotes are checked against them and linked at the commit
//! they were published from.

use super::front::Quote;
use super::UPSTREAM;
use crate::error::Error;
use std::collections::BTreeMap;
use std::path::PathBuf;

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
