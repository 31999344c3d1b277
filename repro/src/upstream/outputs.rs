//! The recorded output of the repro programs on a GPU machine (`upstream/outputs/cuda.txt`):
//! parsing it, and finding what exactly one program (by the hash of its source) printed.

use super::{Data, Repro};
use std::collections::BTreeMap;

/// `upstream/outputs/cuda.txt`: `# ` header lines (the machine), then per program
/// `=== <name> <hash of its source>`, its output, `=== exit <code>`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outputs {
    pub machine: Vec<String>,
    /// name → (source hash, output, exit code).
    pub programs: BTreeMap<String, (String, String, i32)>,
}

/// FNV-1a, 64 bits, as `repro/upstream-repros/build.rs` hashes each program it embeds.
pub fn fnv1a(bytes: &[u8]) -> String {
    let h = bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    });
    format!("{h:016x}")
}

impl Outputs {
    pub fn parse(text: &str) -> Result<Outputs, String> {
        let mut o = Outputs::default();
        let mut current: Option<(String, String)> = None;
        for line in text.lines() {
            if let Some(h) = line.strip_prefix("# ") {
                o.machine.push(h.to_string());
            } else if let Some(code) = line.strip_prefix("=== exit ") {
                let (head, out) = current.take().ok_or("`=== exit` before `=== <name>`")?;
                let (name, hash) = head
                    .split_once(' ')
                    .ok_or_else(|| format!("`=== {head}` names no source hash"))?;
                let code = code
                    .trim()
                    .parse()
                    .map_err(|_| format!("{name}: exit {code:?}"))?;
                o.programs
                    .insert(name.to_string(), (hash.to_string(), out, code));
            } else if let Some(head) = line.strip_prefix("=== ") {
                current = Some((head.trim().to_string(), String::new()));
            } else if let Some((_, out)) = current.as_mut() {
                out.push_str(line);
                out.push('\n');
            }
        }
        if current.is_some() {
            return Err("the last program has no `=== exit` line".into());
        }
        Ok(o)
    }
}

pub(super) fn recorded_output_of<'a>(
    data: &'a Data,
    key: &str,
    repro: Option<(&Repro, &str)>,
) -> Option<(&'a str, i32, String)> {
    repro.and_then(|(_, src)| recorded_output(data, key, src))
}

/// What exactly this program (by the hash of its source) printed on the GPU machine, its exit
/// code and the machine.
fn recorded_output<'a>(data: &'a Data, key: &str, source: &str) -> Option<(&'a str, i32, String)> {
    let o = data.outputs.as_ref()?;
    let (hash, text, exit) = o.programs.get(key)?;
    (*hash == fnv1a(source.as_bytes())).then(|| (text.as_str(), *exit, o.machine.join("; ")))
}

pub(super) fn program_output<'a>(data: &'a Data, key: &str, source: &str) -> Option<&'a str> {
    recorded_output(data, key, source).map(|(t, _, _)| t)
}
