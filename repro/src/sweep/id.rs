//! A divergence's id as a type: the one place its kebab form (`index-select-fwd-wrong-result-
//! ids-transposed-i32-index`) is written and read. The parts are the op, the pass, the category,
//! the inputs whose layout the divergence needs (after shrinking), an i16/i32 index or condition
//! dtype, an index hazard and a value class. Dtypes are not part of it: one bug seen in several
//! dtypes is one divergence that lists them.

use super::cell::{Hazard, Layout, Place, Values};
use super::exec::Category;
use std::fmt;
use std::str::FromStr;

/// Which pass of an op a divergence is in: the forward output, or the gradient of one input.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pass {
    Forward,
    /// The input's role as the op names it (`x`, `source`).
    Backward(String),
}

impl Pass {
    /// How a finding writes its pass: `forward`, `backward source`.
    pub fn parse(s: &str) -> Option<Pass> {
        match s {
            "forward" => Some(Pass::Forward),
            _ => s
                .strip_prefix("backward ")
                .map(|r| Pass::Backward(r.to_string())),
        }
    }
}

impl fmt::Display for Pass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pass::Forward => f.write_str("forward"),
            Pass::Backward(r) => write!(f, "backward {r}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DivergenceId {
    /// The op's registry name (`index_select`).
    pub op: &'static str,
    pub pass: Pass,
    pub category: Category,
    /// The non-contiguous inputs, in the op's input order: (role, layout).
    pub layouts: Vec<(String, Layout)>,
    /// An i16/i32 second dtype shrinking could not move to u32, and what it is (`index`,
    /// `condition`).
    pub aux: Option<(String, String)>,
    pub hazard: Option<Hazard>,
    pub values: Option<Values>,
}

const CATEGORIES: [Category; 5] = [
    Category::WrongResult,
    Category::Unimplemented,
    Category::ErrorMismatch,
    Category::Crash,
    Category::NonFinite,
];

const LAYOUTS: [Layout; 5] = [
    Layout::Offset,
    Layout::Transposed,
    Layout::Broadcast,
    Layout::Narrowed,
    Layout::Strided,
];

const HAZARDS: [Hazard; 3] = [Hazard::PastEnd, Hazard::DtypeMax, Hazard::Negative];

fn value_classes() -> Vec<Values> {
    let mut v = Vec::new();
    for p in [Place::First, Place::Middle, Place::Last] {
        v.extend([Values::Nan(p), Values::PosInf(p), Values::NegInf(p)]);
    }
    v.extend([
        Values::Offset,
        Values::Large,
        Values::Long,
        Values::Overflow,
    ]);
    v
}

fn kebab(s: &str) -> String {
    s.replace('_', "-")
}

impl fmt::Display for DivergenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pass = match &self.pass {
            Pass::Forward => "fwd".to_string(),
            Pass::Backward(r) => format!("bwd-{}", kebab(r)),
        };
        write!(f, "{}-{pass}-{}", kebab(self.op), self.category.as_str())?;
        for (role, l) in &self.layouts {
            write!(f, "-{}-{}", kebab(role), l.as_str())?;
        }
        if let Some((dtype, role)) = &self.aux {
            write!(f, "-{dtype}-{}", kebab(role))?;
        }
        if let Some(h) = self.hazard {
            write!(f, "-{}", h.as_str())?;
        }
        if let Some(v) = self.values {
            write!(f, "-{}", v.slug())?;
        }
        Ok(())
    }
}

impl FromStr for DivergenceId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("`{s}` is not a divergence id: {why}");
        let op = super::ops::OPS
            .iter()
            .filter(|o| s.starts_with(&format!("{}-", kebab(o.name))))
            .max_by_key(|o| o.name.len())
            .ok_or_else(|| bad("no swept op starts it"))?
            .name;
        let rest = &s[kebab(op).len() + 1..];
        let (pass, rest) = if let Some(r) = rest.strip_prefix("fwd-") {
            (Pass::Forward, r)
        } else if let Some(r) = rest.strip_prefix("bwd-") {
            // The role runs up to the category.
            let (at, _) = CATEGORIES
                .iter()
                .filter_map(|c| r.find(&format!("-{}", c.as_str())).map(|i| (i, c)))
                .min_by_key(|(i, _)| *i)
                .ok_or_else(|| bad("no category after the backward role"))?;
            (Pass::Backward(r[..at].to_string()), &r[at + 1..])
        } else {
            return Err(bad("no `fwd` or `bwd-<input>` after the op"));
        };
        let category = *CATEGORIES
            .iter()
            .find(|c| rest == c.as_str() || rest.starts_with(&format!("{}-", c.as_str())))
            .ok_or_else(|| bad("no category after the pass"))?;
        let tail = rest[category.as_str().len()..]
            .strip_prefix('-')
            .unwrap_or("");
        let (layouts, aux, hazard, values) = parse_tail(tail).ok_or_else(|| {
            bad("the layouts, hazard or value class after the category do not parse")
        })?;
        Ok(DivergenceId {
            op,
            pass,
            category,
            layouts,
            aux,
            hazard,
            values,
        })
    }
}

type Tail = (
    Vec<(String, Layout)>,
    Option<(String, String)>,
    Option<Hazard>,
    Option<Values>,
);

/// The parts after the category, read from the end (value class, hazard, aux dtype), the rest
/// as `role-layout` pairs. A value class whose slug is also a layout (`offset`) is tried both
/// ways.
fn parse_tail(tail: &str) -> Option<Tail> {
    let strip = |t: &str, suffix: &str| -> Option<String> {
        if t == suffix {
            Some(String::new())
        } else {
            t.strip_suffix(&format!("-{suffix}")).map(str::to_string)
        }
    };
    let mut tries: Vec<(String, Option<Values>)> = value_classes()
        .into_iter()
        .filter_map(|v| strip(tail, &v.slug()).map(|t| (t, Some(v))))
        .collect();
    tries.push((tail.to_string(), None));
    for (t, values) in tries {
        let (t, hazard) = match HAZARDS
            .iter()
            .find_map(|h| strip(&t, h.as_str()).map(|r| (r, *h)))
        {
            Some((r, h)) => (r, Some(h)),
            None => (t, None),
        };
        let mut aux = None;
        let mut t = t;
        'aux: for d in ["i16", "i32"] {
            for role in ["index", "condition", "target"] {
                if let Some(r) = strip(&t, &format!("{d}-{role}")) {
                    aux = Some((d.to_string(), role.to_string()));
                    t = r;
                    break 'aux;
                }
            }
        }
        if let Some(layouts) = parse_pairs(&t) {
            return Some((layouts, aux, hazard, values));
        }
    }
    None
}

/// `x-transposed-ids-broadcast` → [(x, transposed), (ids, broadcast)].
fn parse_pairs(t: &str) -> Option<Vec<(String, Layout)>> {
    let mut out = Vec::new();
    if t.is_empty() {
        return Some(out);
    }
    let mut role: Vec<&str> = Vec::new();
    for tok in t.split('-') {
        match LAYOUTS.iter().find(|l| l.as_str() == tok) {
            Some(l) if !role.is_empty() => {
                out.push((role.join("-"), *l));
                role.clear();
            }
            _ => role.push(tok),
        }
    }
    role.is_empty().then_some(out)
}

/// What a bug file claims: a sweep divergence or a suite case (`case:<name>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    Case(String),
    Sweep(String),
}

impl Claim {
    pub fn parse(s: &str) -> Claim {
        match s.strip_prefix("case:") {
            Some(c) => Claim::Case(c.to_string()),
            None => Claim::Sweep(s.to_string()),
        }
    }

    /// Its row in the version matrix: the case's name, or `sweep:<id>`.
    pub fn matrix_row(&self) -> String {
        match self {
            Claim::Case(c) => c.clone(),
            Claim::Sweep(id) => format!("sweep:{id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parts_come_back_from_the_text() {
        let id: DivergenceId = "index-select-fwd-wrong-result-ids-transposed-i32-index"
            .parse()
            .unwrap();
        assert_eq!(id.op, "index_select");
        assert_eq!(id.pass, Pass::Forward);
        assert_eq!(id.category, Category::WrongResult);
        assert_eq!(id.layouts, vec![("ids".to_string(), Layout::Transposed)]);
        assert_eq!(id.aux, Some(("i32".into(), "index".into())));
        let off: DivergenceId = "layer-norm-fwd-wrong-result-offset".parse().unwrap();
        assert_eq!(off.values, Some(Values::Offset));
        assert!(off.layouts.is_empty());
        let lay: DivergenceId = "sum-keepdim-fwd-wrong-result-x-offset".parse().unwrap();
        assert_eq!(lay.layouts, vec![("x".to_string(), Layout::Offset)]);
        assert_eq!(lay.values, None);
        assert!("no-such-op-fwd-crash".parse::<DivergenceId>().is_err());
        assert!("index-select-fwd-wrong-result-ids"
            .parse::<DivergenceId>()
            .is_err());
    }
}
