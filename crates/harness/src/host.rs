//! Tensors as plain host data (dtype, shape, row-major values), the form the oracle computes in,
//! and the two crossings to and from candle.
//!
//! Reading a device tensor back deliberately avoids candle's own strided copy: the raw storage is
//! moved to the host unchanged and walked with the tensor's layout here, so a bug in a backend's
//! `contiguous` cannot also corrupt the evidence of it.

use candle_core::{DType, Device, Layout, Storage, Tensor};
use half::{bf16, f16};
use serde::{Deserialize, Serialize, Serializer};

/// A dtype as reports spell it (`u32`, `f16`, ...).
pub fn dtype_name(d: DType) -> &'static str {
    d.as_str()
}

fn serialize_dtype<S: Serializer>(d: &DType, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(dtype_name(*d))
}

/// Reads back what `serialize_dtype` wrote (candle's own names: `f32`, `u32`, `bf16`, …).
fn deserialize_dtype<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DType, D::Error> {
    let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
    s.parse::<DType>()
        .map_err(|_| serde::de::Error::custom(format!("unknown dtype `{s}`")))
}

/// Row-major host data. Values are held as f64, which is exact for every value the cases use
/// (integers below 2^53, and every f16/bf16/f32 number).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostTensor {
    #[serde(
        serialize_with = "serialize_dtype",
        deserialize_with = "deserialize_dtype"
    )]
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
}

impl HostTensor {
    pub fn new(dtype: DType, shape: &[usize], values: Vec<f64>) -> Self {
        assert_eq!(
            shape.iter().product::<usize>(),
            values.len(),
            "host tensor: shape {shape:?} does not hold {} values",
            values.len()
        );
        Self {
            dtype,
            shape: shape.to_vec(),
            values: round_all(dtype, values),
        }
    }

    pub fn from_fn(dtype: DType, shape: &[usize], f: impl Fn(usize) -> f64) -> Self {
        let n = shape.iter().product();
        Self::new(dtype, shape, (0..n).map(f).collect())
    }

    pub fn zeros(dtype: DType, shape: &[usize]) -> Self {
        Self::from_fn(dtype, shape, |_| 0.0)
    }

    pub fn elem_count(&self) -> usize {
        self.values.len()
    }

    /// Uploads the data with `Tensor::from_vec` in its own dtype (no candle cast involved).
    pub fn to_tensor(&self, device: &Device) -> candle_core::Result<Tensor> {
        let shape = self.shape.as_slice();
        let v = &self.values;
        match self.dtype {
            DType::U8 => Tensor::from_vec(
                v.iter().map(|&x| x as u8).collect::<Vec<_>>(),
                shape,
                device,
            ),
            DType::U32 => Tensor::from_vec(
                v.iter().map(|&x| x as u32).collect::<Vec<_>>(),
                shape,
                device,
            ),
            DType::I64 => Tensor::from_vec(
                v.iter().map(|&x| x as i64).collect::<Vec<_>>(),
                shape,
                device,
            ),
            DType::F16 => Tensor::from_vec(
                v.iter().map(|&x| f16::from_f64(x)).collect::<Vec<_>>(),
                shape,
                device,
            ),
            DType::BF16 => Tensor::from_vec(
                v.iter().map(|&x| bf16::from_f64(x)).collect::<Vec<_>>(),
                shape,
                device,
            ),
            DType::F32 => Tensor::from_vec(
                v.iter().map(|&x| x as f32).collect::<Vec<_>>(),
                shape,
                device,
            ),
            DType::F64 => Tensor::from_vec(v.clone(), shape, device),
            #[cfg(feature = "i16-i32")]
            DType::I16 => Tensor::from_vec(
                v.iter().map(|&x| x as i16).collect::<Vec<_>>(),
                shape,
                device,
            ),
            #[cfg(feature = "i16-i32")]
            DType::I32 => Tensor::from_vec(
                v.iter().map(|&x| x as i32).collect::<Vec<_>>(),
                shape,
                device,
            ),
            other => candle_core::bail!("harness: no host representation for {other:?}"),
        }
    }
}

/// SplitMix64: deterministic pseudo-random numbers, so generated inputs are reproducible from
/// the seed a report records.
pub fn splitmix64(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A Fisher–Yates shuffle of `0..n` driven by `splitmix64` from `seed`.
pub fn shuffled_permutation(n: usize, seed: &mut u64) -> Vec<u32> {
    let mut v: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        v.swap(i, (splitmix64(seed) % (i as u64 + 1)) as usize);
    }
    v
}

/// Whether an integer dtype holds negative values.
pub fn is_signed(dtype: DType) -> bool {
    #[cfg(feature = "i16-i32")]
    if matches!(dtype, DType::I16 | DType::I32) {
        return true;
    }
    dtype == DType::I64
}

/// The largest value of an integer dtype.
pub fn int_max(dtype: DType) -> f64 {
    match dtype {
        DType::U8 => u8::MAX as f64,
        DType::U32 => u32::MAX as f64,
        #[cfg(feature = "i16-i32")]
        DType::I16 => i16::MAX as f64,
        #[cfg(feature = "i16-i32")]
        DType::I32 => i32::MAX as f64,
        _ => i64::MAX as f64,
    }
}

/// Rounds a value to what `dtype` can hold: floats round to nearest; an unsigned integer out of
/// range wraps (an integer sum that overflows keeps the dtype's modular arithmetic; every other
/// integer the harness holds is in range, where this is the identity).
pub fn round_to(dtype: DType, x: f64) -> f64 {
    match dtype {
        DType::F16 => f16::from_f64(x).to_f64(),
        DType::BF16 => bf16::from_f64(x).to_f64(),
        DType::F32 => x as f32 as f64,
        DType::U8 => (x as i128).rem_euclid(1 << 8) as f64,
        DType::U32 => (x as i128).rem_euclid(1 << 32) as f64,
        DType::I64 => x as i64 as f64,
        #[cfg(feature = "i16-i32")]
        DType::I16 => x as i16 as f64,
        #[cfg(feature = "i16-i32")]
        DType::I32 => x as i32 as f64,
        _ => x,
    }
}

fn round_all(dtype: DType, values: Vec<f64>) -> Vec<f64> {
    values.into_iter().map(|x| round_to(dtype, x)).collect()
}

/// Layout facts of a tensor as the backend reports them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorMeta {
    #[serde(
        serialize_with = "serialize_dtype",
        deserialize_with = "deserialize_dtype"
    )]
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
    pub offset: usize,
    pub contiguous: bool,
}

impl TensorMeta {
    pub fn of(t: &Tensor) -> Self {
        let l = t.layout();
        Self {
            dtype: t.dtype(),
            shape: t.dims().to_vec(),
            stride: l.stride().to_vec(),
            offset: l.start_offset(),
            contiguous: l.is_contiguous(),
        }
    }
}

/// Reads a tensor of any backend back as row-major host data, walking its layout here.
pub fn read_back(t: &Tensor) -> candle_core::Result<HostTensor> {
    let on_host = t.to_device(&Device::Cpu)?;
    let (storage, layout) = on_host.storage_and_layout();
    let cpu = match &*storage {
        Storage::Cpu(cpu) => cpu,
        _ => candle_core::bail!("harness: to_device(Cpu) did not return CPU storage"),
    };
    let values = match t.dtype() {
        DType::U8 => walk(cpu.as_slice::<u8>()?, layout, |x| x as f64),
        DType::U32 => walk(cpu.as_slice::<u32>()?, layout, |x| x as f64),
        DType::I64 => walk(cpu.as_slice::<i64>()?, layout, |x| x as f64),
        DType::F16 => walk(cpu.as_slice::<f16>()?, layout, |x| x.to_f64()),
        DType::BF16 => walk(cpu.as_slice::<bf16>()?, layout, |x| x.to_f64()),
        DType::F32 => walk(cpu.as_slice::<f32>()?, layout, |x| x as f64),
        DType::F64 => walk(cpu.as_slice::<f64>()?, layout, |x| x),
        #[cfg(feature = "i16-i32")]
        DType::I16 => walk(cpu.as_slice::<i16>()?, layout, |x| x as f64),
        #[cfg(feature = "i16-i32")]
        DType::I32 => walk(cpu.as_slice::<i32>()?, layout, |x| x as f64),
        other => candle_core::bail!("harness: cannot read back {other:?}"),
    }?;
    Ok(HostTensor {
        dtype: t.dtype(),
        shape: t.dims().to_vec(),
        values,
    })
}

/// Visits a strided buffer in row-major order of `layout`'s shape.
fn walk<T: Copy>(
    buf: &[T],
    layout: &Layout,
    to_f64: impl Fn(T) -> f64,
) -> candle_core::Result<Vec<f64>> {
    let dims = layout.dims();
    let stride = layout.stride();
    let n: usize = dims.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut index = vec![0usize; dims.len()];
    for _ in 0..n {
        let pos =
            layout.start_offset() + index.iter().zip(stride).map(|(i, s)| i * s).sum::<usize>();
        let x = *buf.get(pos).ok_or_else(|| {
            candle_core::Error::Msg(format!(
                "harness: layout {layout:?} reads position {pos} past a storage of {}",
                buf.len()
            ))
        })?;
        out.push(to_f64(x));
        for d in (0..dims.len()).rev() {
            index[d] += 1;
            if index[d] < dims[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_back_walks_strides_itself() -> candle_core::Result<()> {
        let h = HostTensor::from_fn(DType::U32, &[2, 3], |i| i as f64);
        let t = h.to_tensor(&Device::Cpu)?;
        let tt = t.t()?; // a transposed view: stride [1, 3]
        assert!(!tt.is_contiguous());
        assert_eq!(read_back(&tt)?.values, vec![0., 3., 1., 4., 2., 5.]);
        let n = t.narrow(1, 1, 2)?; // a view with a non-zero offset
        assert_eq!(read_back(&n)?.values, vec![1., 2., 4., 5.]);
        Ok(())
    }

    #[test]
    fn half_types_round_trip() -> candle_core::Result<()> {
        for dt in [DType::F16, DType::BF16, DType::F32, DType::U8, DType::I64] {
            let h = HostTensor::from_fn(dt, &[4], |i| i as f64 * 1.5);
            assert_eq!(read_back(&h.to_tensor(&Device::Cpu)?)?, h);
        }
        Ok(())
    }
}
