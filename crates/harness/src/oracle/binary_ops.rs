//! Reference implementations of the elementwise binary ops (`add`, `sub`, `mul`, `div`,
//! `maximum`, `minimum`, `pow`), the comparisons (`eq` … `ge`) and their `broadcast_*` forms,
//! written like `sweep_ops` from each op's meaning, in f64 and rounded once to the output dtype.
//!
//! Where candle documents no contract, PyTorch's is taken:
//! - `maximum`/`minimum` return NaN when either operand is NaN (`torch.maximum`: "If one of the
//!   elements being compared is a NaN, then that element is returned").
//! - float division follows IEEE 754 (`x/0 = ±inf`, `0/0 = NaN`), as `torch.div` does.
//! - integer results wrap modulo 2^8 / 2^32 for u8 / u32 (`torch.uint8` arithmetic wraps);
//!   integer division truncates toward zero (`torch.div(.., rounding_mode="trunc")`), and an
//!   integer division by zero breaks the contract (PyTorch raises "ZeroDivisionError").
//! - `pow(x, y)` is `x^y`; the sweep calls it on positive bases only (candle computes
//!   `exp(y·ln x)`, which has no real value for a negative base, where `torch.pow` has one for
//!   integral exponents).
//! - broadcasting follows NumPy's rules (dims aligned on the right, a size 1 stretches).

use super::sweep_ops::out;
use super::{broadcast_as, OracleResult, Rejection};
use crate::host::HostTensor;
use candle_core::DType;

/// The broadcast shape of two shapes (NumPy's rules), or the rejection naming `rhs`.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>, Rejection> {
    let n = a.len().max(b.len());
    let at = |s: &[usize], d: usize| {
        if d + s.len() < n {
            1
        } else {
            s[d + s.len() - n]
        }
    };
    (0..n)
        .map(|d| match (at(a, d), at(b, d)) {
            (x, y) if x == y || y == 1 => Ok(x),
            (1, y) => Ok(y),
            _ => Err(Rejection::new(
                "rhs",
                format!("shapes {a:?} and {b:?} cannot be broadcast together"),
                &["broadcast", "shape"],
            )),
        })
        .collect()
}

fn same_dtype(a: &HostTensor, b: &HostTensor, op: &str) -> Result<(), Rejection> {
    if a.dtype != b.dtype {
        return Err(Rejection::new(
            "rhs",
            format!(
                "{op} operands must share a dtype, not {} and {}",
                a.dtype.as_str(),
                b.dtype.as_str()
            ),
            &["dtype"],
        ));
    }
    Ok(())
}

fn same_shape(a: &HostTensor, b: &HostTensor, op: &str) -> Result<(), Rejection> {
    if a.shape != b.shape {
        return Err(Rejection::new(
            "rhs",
            format!(
                "{op} operands must share a shape, not {:?} and {:?}",
                a.shape, b.shape
            ),
            &["shape"],
        ));
    }
    Ok(())
}

/// The exact result of one elementwise arithmetic op on two values of `dtype` (before the one
/// rounding to the dtype); `None` for an integer division by zero.
fn arith(op: &str, dtype: DType, x: f64, y: f64) -> Option<f64> {
    Some(match op {
        "add" => x + y,
        "sub" => x - y,
        "mul" => x * y,
        "div" if dtype.is_float() => x / y,
        "div" if y == 0.0 => return None,
        "div" => (x / y).trunc(),
        "maximum" | "minimum" if x.is_nan() || y.is_nan() => f64::NAN,
        "maximum" => x.max(y),
        "minimum" => x.min(y),
        "pow" => x.powf(y),
        _ => panic!("oracle: unknown binary op `{op}`"),
    })
}

/// `a.<op>(b)` for `op` in `add`, `sub`, `mul`, `div`, `maximum`, `minimum`, `pow`, on tensors
/// of one shape and dtype (see the module's doc for the conventions).
pub fn binary(a: &HostTensor, b: &HostTensor, op: &str) -> OracleResult {
    same_shape(a, b, op)?;
    same_dtype(a, b, op)?;
    if op == "pow" && !a.dtype.is_float() {
        return Err(Rejection::new(
            "self",
            format!("pow takes a float tensor, not {}", a.dtype.as_str()),
            &["dtype", "unsupported"],
        ));
    }
    let values = a
        .values
        .iter()
        .zip(&b.values)
        .map(|(&x, &y)| {
            arith(op, a.dtype, x, y).ok_or_else(|| {
                Rejection::new(
                    "rhs",
                    format!("integer division of {x} by zero"),
                    &["division by zero", "divide by zero"],
                )
            })
        })
        .collect::<Result<Vec<f64>, Rejection>>()?;
    Ok(out(a.dtype, a.shape.clone(), values))
}

/// Both operands broadcast to their common shape.
fn broadcast_both(a: &HostTensor, b: &HostTensor) -> Result<(HostTensor, HostTensor), Rejection> {
    let shape = broadcast_shape(&a.shape, &b.shape)?;
    Ok((broadcast_as(a, &shape)?, broadcast_as(b, &shape)?))
}

/// `a.broadcast_<op>(b)`: `binary` on both operands broadcast to their common shape.
pub fn broadcast_binary(a: &HostTensor, b: &HostTensor, op: &str) -> OracleResult {
    let (a, b) = broadcast_both(a, b)?;
    binary(&a, &b, op)
}

/// `a.<op>(b)` for `op` in `eq`, `ne`, `lt`, `le`, `gt`, `ge`, as u8 0/1 (IEEE: every
/// comparison with NaN is false but `ne`, which is true).
pub fn compare(a: &HostTensor, b: &HostTensor, op: &str) -> OracleResult {
    same_shape(a, b, op)?;
    same_dtype(a, b, op)?;
    let f = |x: f64, y: f64| match op {
        "eq" => x == y,
        "ne" => x != y,
        "lt" => x < y,
        "le" => x <= y,
        "gt" => x > y,
        "ge" => x >= y,
        _ => panic!("oracle: unknown comparison `{op}`"),
    };
    let values = a
        .values
        .iter()
        .zip(&b.values)
        .map(|(&x, &y)| f(x, y) as u8 as f64)
        .collect();
    Ok(out(DType::U8, a.shape.clone(), values))
}

/// `a.broadcast_<op>(b)`: `compare` on both operands broadcast to their common shape.
pub fn broadcast_compare(a: &HostTensor, b: &HostTensor, op: &str) -> OracleResult {
    let (a, b) = broadcast_both(a, b)?;
    compare(&a, &b, op)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(dtype: DType, shape: &[usize], v: &[f64]) -> HostTensor {
        HostTensor::new(dtype, shape, v.to_vec())
    }

    #[test]
    fn maximum_and_minimum_propagate_nan_from_either_side() {
        let a = t(DType::F32, &[3], &[1.0, f64::NAN, 2.0]);
        let b = t(DType::F32, &[3], &[f64::NAN, 1.0, 3.0]);
        let m = binary(&a, &b, "maximum").unwrap().values;
        assert!(m[0].is_nan() && m[1].is_nan() && m[2] == 3.0);
        let m = binary(&a, &b, "minimum").unwrap().values;
        assert!(m[0].is_nan() && m[1].is_nan() && m[2] == 2.0);
    }

    #[test]
    fn integers_wrap_and_truncate_and_refuse_a_zero_divisor() {
        let a = t(DType::U8, &[2], &[3.0, 200.0]);
        let b = t(DType::U8, &[2], &[5.0, 2.0]);
        assert_eq!(binary(&a, &b, "sub").unwrap().values, [254.0, 198.0]);
        assert_eq!(binary(&a, &b, "mul").unwrap().values, [15.0, 144.0]);
        assert_eq!(binary(&a, &b, "div").unwrap().values, [0.0, 100.0]);
        let z = t(DType::U8, &[2], &[1.0, 0.0]);
        assert_eq!(binary(&a, &z, "div").unwrap_err().argument, "rhs");
        let f = t(DType::F32, &[3], &[1.0, -1.0, 0.0]);
        let zf = t(DType::F32, &[3], &[0.0; 3]);
        let q = binary(&f, &zf, "div").unwrap().values;
        assert!(q[0] == f64::INFINITY && q[1] == f64::NEG_INFINITY && q[2].is_nan());
    }

    #[test]
    fn broadcasting_stretches_size_one_and_missing_dims() {
        let a = t(DType::F64, &[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        let col = t(DType::F64, &[2, 1], &[10.0, 20.0]);
        let row = t(DType::F64, &[3], &[1.0, 2.0, 3.0]);
        assert_eq!(
            broadcast_binary(&a, &col, "add").unwrap().values,
            [10.0, 11.0, 12.0, 23.0, 24.0, 25.0]
        );
        assert_eq!(
            broadcast_compare(&a, &row, "lt").unwrap().values,
            [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
        );
        assert!(broadcast_binary(&a, &t(DType::F64, &[2], &[0.0; 2]), "add").is_err());
    }
}
