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
    /// One index of -1 (signed index dtypes only).
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

/// Where in each reduced line a special value goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Place {
    First,
    Middle,
    Last,
}

/// How a cell's values are drawn beyond the default small random ones: the values that break
/// low precision and the reductions built on it. Cells of these classes check the forward pass
/// only (a finite-difference gradient is meaningless at ±inf and imprecise at 1e18 or 1e8).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Values {
    #[default]
    Plain,
    /// One NaN in every line the op reduces (along its dim, or the last dim), at the place.
    Nan(Place),
    PosInf(Place),
    NegInf(Place),
    /// Rows whose mean is large against their spread: `offset + [-1, 1)` (see `offset`).
    Offset,
    /// Magnitudes whose squares overflow the dtype (f16) or come near f32's limit (see `scale`).
    Large,
    /// One reduced dim of `LONG` elements `(i mod 16)/16` (f16 and bf16: where accumulating in
    /// the dtype itself loses the sum).
    Long,
    /// u8/u32 values within 20 of the dtype's maximum, so a sum wraps around (the output keeps
    /// the input's dtype, so the expectation is the dtype's modular arithmetic).
    Overflow,
}

/// The length of a `Values::Long` reduction.
pub const LONG: usize = 65_536;

/// The value of element `i` of a long row: sixteenths in [0, 1), exact in every float dtype,
/// so the row's sum is known and a standalone repro can write the row as a formula.
pub fn long_value(i: usize) -> f64 {
    (i % 16) as f64 / 16.0
}

/// Whether `values` start a long row (at least `min` of them, each `long_value(i)`): what a
/// report and a repro write as the formula instead of the numbers.
pub fn is_long_row(values: &[f64], min: usize) -> bool {
    values.len() >= min && values.iter().enumerate().all(|(i, &v)| v == long_value(i))
}

impl Values {
    pub fn is_plain(&self) -> bool {
        *self == Values::Plain
    }

    /// The special value a non-finite class places, with its place.
    pub fn non_finite(self) -> Option<(f64, Place)> {
        match self {
            Values::Nan(p) => Some((f64::NAN, p)),
            Values::PosInf(p) => Some((f64::INFINITY, p)),
            Values::NegInf(p) => Some((f64::NEG_INFINITY, p)),
            _ => None,
        }
    }

    /// The class as a divergence id and a report name it: `nan-first`, `offset`, `long`.
    pub fn slug(self) -> String {
        let place = |p: Place| match p {
            Place::First => "first",
            Place::Middle => "middle",
            Place::Last => "last",
        };
        match self {
            Values::Plain => "plain".into(),
            Values::Nan(p) => format!("nan-{}", place(p)),
            Values::PosInf(p) => format!("pos-inf-{}", place(p)),
            Values::NegInf(p) => format!("neg-inf-{}", place(p)),
            Values::Offset => "offset".into(),
            Values::Large => "large".into(),
            Values::Long => "long".into(),
            Values::Overflow => "overflow".into(),
        }
    }

    /// The class as a title says it (`None` for plain values).
    pub fn describe(self, dtype: DType, longest: usize) -> Option<String> {
        let place = |p: Place| match p {
            Place::First => "first in",
            Place::Middle => "in the middle of",
            Place::Last => "last in",
        };
        Some(match self {
            Values::Plain => return None,
            Values::Nan(p) => format!("with a NaN {} each reduced line", place(p)),
            Values::PosInf(p) => format!("with +inf {} each reduced line", place(p)),
            Values::NegInf(p) => format!("with -inf {} each reduced line", place(p)),
            Values::Offset => format!(
                "on rows of mean {} and spread ±1",
                plain_number(offset(dtype))
            ),
            Values::Large => format!(
                "on values up to {} in magnitude",
                plain_number(2.0 * scale(dtype))
            ),
            Values::Long => format!("over rows of {longest} elements"),
            Values::Overflow => "on values near the dtype's maximum (the sum wraps)".into(),
        })
    }

    /// The dtypes a class is swept in: a long row only in the half-precision dtypes.
    pub fn applies_to(self, dtype: DType) -> bool {
        match self {
            Values::Long => matches!(dtype, DType::F16 | DType::BF16),
            // i64 near its maximum is not exact in the f64 the harness holds values in.
            Values::Overflow => matches!(dtype, DType::U8 | DType::U32),
            _ => dtype.is_float(),
        }
    }
}

/// `64`, `2000`, `1e8`: how a title writes a power-of-ten-ish size.
fn plain_number(x: f64) -> String {
    if x < 1e5 {
        format!("{x}")
    } else {
        format!("{x:e}")
    }
}

/// Where `Values::Offset` centres a row: about a hundred to ten thousand of the dtype's
/// spacing at the centre, so the row keeps distinct values and `E[x²] − E[x]²` in the dtype
/// (or in f32 for the half types) loses the variance while a two-pass mean does not.
pub fn offset(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => 64.0,
        DType::BF16 => 16.0,
        DType::F64 => 1e8,
        _ => 1e4,
    }
}

/// What `Values::Large` multiplies values in [-2, 2) by: in f16 the squares (up to 4e6) overflow
/// the dtype but not f32; in bf16/f32 they reach 4e36, near f32's limit; f64 keeps that ratio.
pub fn scale(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => 1e3,
        DType::F64 => 1e150,
        _ => 1e18,
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
    /// How the first input's values are drawn (plain cells leave it out of their JSON).
    #[serde(default, skip_serializing_if = "Values::is_plain")]
    pub values: Values,
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

/// Redraws `h`'s values for `values`, with `dim` the dim the op reduces (for the non-finite
/// classes, which put one special value in every line along it).
pub fn apply_values(h: &mut HostTensor, values: Values, dim: usize) {
    let dtype = h.dtype;
    match values {
        Values::Plain => {}
        Values::Offset => h
            .values
            .iter_mut()
            .for_each(|v| *v = offset(dtype) + *v / 2.0),
        Values::Large => h.values.iter_mut().for_each(|v| *v *= scale(dtype)),
        Values::Overflow => {
            let max = harness::host::int_max(dtype);
            h.values
                .iter_mut()
                .for_each(|v| *v = max - v.abs().min(20.0));
        }
        Values::Long => h
            .values
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = long_value(i)),
        Values::Nan(place) | Values::PosInf(place) | Values::NegInf(place) => {
            let (special, _) = values.non_finite().expect("a non-finite class");
            let (outer, len, inner) = harness::oracle::lines(&h.shape, dim);
            let at = match place {
                Place::First => 0,
                Place::Middle => len / 2,
                Place::Last => len.saturating_sub(1),
            };
            for o in 0..outer {
                for r in 0..inner {
                    h.values[(o * len + at) * inner + r] = special;
                }
            }
        }
    }
    h.values = h
        .values
        .iter()
        .map(|&v| harness::host::round_to(dtype, v))
        .collect();
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
