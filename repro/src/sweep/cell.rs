//! One sweep cell: an op, its dtypes, sizes, the layout of every input and how values are drawn,
//! all derived from a recorded seed, so a cell (and the minimal repro shrunk from it) can be
//! rebuilt exactly from its JSON.

use candle_core::{DType, Device, Tensor, Var};
use harness::host::{splitmix64, HostTensor};
use serde::{Deserialize, Serialize};

/// How an input tensor is laid out in memory. Every input of every op, index tensors included,
/// is swept over these; the order is "simplest first", which shrinking relies on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    Contiguous,
    /// Contiguous but starting at a non-zero storage offset (`narrow(0, 1, n)` of a taller tensor).
    Offset,
    /// The last two dims swapped (`.t()` of a contiguous tensor).
    Transposed,
    /// A stride-0 dim 0 (`broadcast_as` of a tensor whose dim 0 is 1).
    Broadcast,
    /// Non-contiguous with an offset (`narrow` of the last dim of a wider tensor).
    Narrowed,
    /// Every element one apart from the next: a last-dim stride of 2 (one column of a tensor
    /// with a trailing dim of 2, `narrow(r, 0, 1)` then `squeeze(r)`), as an index taken from a
    /// column of a 2-D routing table is.
    Strided,
}

pub const LAYOUTS: [Layout; 6] = [
    Layout::Contiguous,
    Layout::Offset,
    Layout::Transposed,
    Layout::Broadcast,
    Layout::Narrowed,
    Layout::Strided,
];

impl Layout {
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Contiguous => "contiguous",
            Layout::Offset => "offset",
            Layout::Transposed => "transposed",
            Layout::Broadcast => "broadcast",
            Layout::Narrowed => "narrowed",
            Layout::Strided => "strided",
        }
    }

    /// Whether the layout means something for a tensor of this rank.
    pub fn applies_to(self, rank: usize) -> bool {
        match self {
            Layout::Transposed | Layout::Narrowed => rank >= 2,
            _ => rank >= 1,
        }
    }
}

/// An input as a broken call would pass it: an index out of the op's contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hazard {
    /// One index equal to the indexed dim's size.
    PastEnd,
    /// One index equal to the index dtype's maximum (CUDA kernels treat it as "skip").
    DtypeMax,
    /// One index of -1 (i64 only).
    Negative,
}

impl Hazard {
    pub fn as_str(self) -> &'static str {
        match self {
            Hazard::PastEnd => "index-past-end",
            Hazard::DtypeMax => "index-dtype-max",
            Hazard::Negative => "index-negative",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    pub op: String,
    /// The op's main dtype (its data tensors).
    pub dtype: String,
    /// The second dtype some ops take: the index dtype, the condition dtype, the target dtype.
    pub aux: Option<String>,
    /// Which of the op's variants (dim, sort order, comparison) this cell calls.
    pub variant: usize,
    /// Size knobs; the op maps them to shapes, so shrinking them keeps every shape consistent.
    pub knobs: Vec<usize>,
    /// One layout per input, in the op's input order.
    pub layouts: Vec<Layout>,
    /// Small exact integers instead of random values (what shrinking tries).
    pub simple: bool,
    pub hazard: Option<Hazard>,
    pub seed: u64,
}

pub fn parse_dtype(s: &str) -> DType {
    s.parse()
        .unwrap_or_else(|_| panic!("sweep: unknown dtype `{s}`"))
}

impl Cell {
    pub fn dtype(&self) -> DType {
        parse_dtype(&self.dtype)
    }

    pub fn aux(&self) -> Option<DType> {
        self.aux.as_deref().map(parse_dtype)
    }

    /// The dtypes as a report lists them: `f32`, `f32 · u32 index`, `u8 → f16`.
    pub fn dtype_label(&self, aux_role: &str) -> String {
        match (&self.aux, aux_role) {
            (None, _) => self.dtype.clone(),
            (Some(a), "target") => format!("{} → {a}", self.dtype),
            (Some(a), role) => format!("{} · {a} {role}", self.dtype),
        }
    }

    /// Total elements over the knobs, the size shrinking minimises.
    pub fn size(&self) -> usize {
        self.knobs.iter().product()
    }
}

/// What an input is, which decides how its values are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Data,
    /// An index whose values must stay below `bound` (the indexed dim's size).
    Index {
        bound: usize,
    },
    /// A where_cond condition: 0, 1 or 2 (the docs say "non-zero" is true).
    Cond,
}

#[derive(Clone, Debug)]
pub struct Input {
    pub role: &'static str,
    pub kind: Kind,
    /// The logical values, row-major.
    pub host: HostTensor,
}

/// The deterministic random source of one cell.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: usize) -> usize {
        (splitmix64(&mut self.0) % n.max(1) as u64) as usize
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        let u = (splitmix64(&mut self.0) >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * u
    }
}

/// Draws data values for `dtype`: random floats in [-2, 2) (random integers 0..20), or, in
/// simple mode, small integers that every dtype holds exactly.
pub fn data_values(dtype: DType, n: usize, simple: bool, rng: &mut Rng) -> Vec<f64> {
    let float = dtype.is_float();
    (0..n)
        .map(|i| match (simple, float) {
            (true, true) => (i % 5) as f64 - 2.0,
            (true, false) => (i % 5) as f64,
            (false, true) => rng.uniform(-2.0, 2.0),
            (false, false) => rng.below(20) as f64,
        })
        .collect()
}

/// The view that turns a contiguous base tensor into an input of the wanted layout.
#[derive(Clone, Debug, PartialEq)]
pub enum View {
    None,
    Narrow {
        dim: usize,
        start: usize,
        len: usize,
    },
    Transpose,
    BroadcastAs(Vec<usize>),
    /// Element 0 of a trailing dim added to the base, then that dim removed.
    Column {
        dim: usize,
    },
}

/// Pads `h` along `dim` with one `fill` slice before and `after` slices after.
fn pad(h: &HostTensor, dim: usize, after: usize, fill: f64) -> HostTensor {
    let (outer, len, inner) = harness::oracle::lines(&h.shape, dim);
    let mut values = Vec::new();
    for o in 0..outer {
        values.extend(std::iter::repeat_n(fill, inner));
        values.extend_from_slice(&h.values[o * len * inner..(o + 1) * len * inner]);
        values.extend(std::iter::repeat_n(fill, inner * after));
    }
    let mut shape = h.shape.clone();
    shape[dim] += 1 + after;
    HostTensor {
        dtype: h.dtype,
        shape,
        values,
    }
}

/// The contiguous base data and the view giving `logical` the layout. The padding a view skips
/// holds 7 (a valid index for every index tensor the sweep builds is below 7 only by chance,
/// so a backend reading padding shows up as a wrong result, not a silent pass).
pub fn base_and_view(logical: &HostTensor, layout: Layout) -> (HostTensor, View) {
    let r = logical.shape.len();
    let fill = 7.0;
    match layout {
        Layout::Contiguous => (logical.clone(), View::None),
        Layout::Offset => (
            pad(logical, 0, 0, fill),
            View::Narrow {
                dim: 0,
                start: 1,
                len: logical.shape[0],
            },
        ),
        Layout::Transposed => (harness::oracle::swap_last_two(logical), View::Transpose),
        Layout::Broadcast => {
            let row: usize = logical.shape[1..].iter().product();
            let mut shape = logical.shape.clone();
            shape[0] = 1;
            let base = HostTensor {
                dtype: logical.dtype,
                shape,
                values: logical.values[..row].to_vec(),
            };
            (base, View::BroadcastAs(logical.shape.clone()))
        }
        Layout::Narrowed => (
            pad(logical, r - 1, 1, fill),
            View::Narrow {
                dim: r - 1,
                start: 1,
                len: logical.shape[r - 1],
            },
        ),
        Layout::Strided => (interleave(logical, fill), View::Column { dim: r }),
    }
}

/// `h` with a trailing dim of 2: its values at position 0, `fill` at 1.
fn interleave(h: &HostTensor, fill: f64) -> HostTensor {
    let mut shape = h.shape.clone();
    shape.push(2);
    HostTensor {
        dtype: h.dtype,
        shape,
        values: h.values.iter().flat_map(|&v| [v, fill]).collect(),
    }
}

/// Makes the logical values of a broadcast input what a broadcast can hold: every row along
/// dim 0 equal to row 0.
pub fn fit_to_layout(h: &mut HostTensor, layout: Layout) {
    if layout == Layout::Broadcast && !h.values.is_empty() {
        let row: usize = h.shape[1..].iter().product();
        for i in row..h.values.len() {
            h.values[i] = h.values[i % row];
        }
    }
}

pub fn apply_view(t: &Tensor, view: &View) -> candle_core::Result<Tensor> {
    match view {
        View::None => Ok(t.clone()),
        View::Narrow { dim, start, len } => t.narrow(*dim, *start, *len),
        View::Transpose => {
            let r = t.rank();
            t.transpose(r - 2, r - 1)
        }
        View::BroadcastAs(shape) => t.broadcast_as(shape.as_slice()),
        View::Column { dim } => t.narrow(*dim, 0, 1)?.squeeze(*dim),
    }
}

/// The same view as Rust source, appended to an expression.
pub fn view_code(view: &View) -> String {
    match view {
        View::None => String::new(),
        View::Narrow { dim, start, len } => format!(".narrow({dim}, {start}, {len})?"),
        View::Transpose => ".t()?".into(),
        View::BroadcastAs(shape) => {
            let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            format!(".broadcast_as(({},))?", dims.join(", "))
        }
        View::Column { dim } => format!(".narrow({dim}, 0, 1)?.squeeze({dim})?"),
    }
}

/// Uploads an input in its layout.
pub fn materialize(
    logical: &HostTensor,
    layout: Layout,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let (base, view) = base_and_view(logical, layout);
    apply_view(&base.to_tensor(device)?, &view)
}

/// Uploads an input as a variable (its contiguous base) plus the view the op sees, so the
/// gradient flows back through the view's own backward pass.
pub fn materialize_var(
    logical: &HostTensor,
    layout: Layout,
    device: &Device,
) -> candle_core::Result<(Var, Tensor)> {
    let (base, view) = base_and_view(logical, layout);
    let var = Var::from_tensor(&base.to_tensor(device)?)?;
    let t = apply_view(var.as_tensor(), &view)?;
    Ok((var, t))
}

/// Maps a gradient with respect to the logical input onto the base variable: the padding a view
/// skips gets zero, a broadcast base gets the sum over the rows it feeds.
pub fn grad_to_base(g: &HostTensor, layout: Layout) -> HostTensor {
    let r = g.shape.len();
    match layout {
        Layout::Contiguous => g.clone(),
        Layout::Offset => pad(g, 0, 0, 0.0),
        Layout::Transposed => harness::oracle::swap_last_two(g),
        Layout::Narrowed => pad(g, r - 1, 1, 0.0),
        Layout::Strided => interleave(g, 0.0),
        Layout::Broadcast => {
            let row: usize = g.shape[1..].iter().product();
            let mut values = vec![0.0; row];
            for (i, v) in g.values.iter().enumerate() {
                values[i % row.max(1)] += v;
            }
            let mut shape = g.shape.clone();
            shape[0] = 1;
            HostTensor {
                dtype: g.dtype,
                shape,
                values,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use harness::host::read_back;

    #[test]
    fn every_layout_reads_back_as_the_logical_values() -> candle_core::Result<()> {
        let mut h = HostTensor::from_fn(DType::U32, &[3, 4], |i| i as f64);
        for layout in LAYOUTS {
            fit_to_layout(&mut h, layout);
            let t = materialize(&h, layout, &Device::Cpu)?;
            assert_eq!(read_back(&t)?, h, "{layout:?}");
            assert_eq!(t.is_contiguous(), layout <= Layout::Offset, "{layout:?}");
        }
        Ok(())
    }

    #[test]
    fn gradients_map_onto_the_base() {
        let g = HostTensor::from_fn(DType::F64, &[2, 2], |i| i as f64);
        assert_eq!(grad_to_base(&g, Layout::Broadcast).values, vec![2., 4.]);
        assert_eq!(
            grad_to_base(&g, Layout::Transposed).values,
            vec![0., 2., 1., 3.]
        );
        assert_eq!(
            grad_to_base(&g, Layout::Narrowed).values,
            vec![0., 0., 1., 0., 0., 2., 3., 0.]
        );
    }
}
