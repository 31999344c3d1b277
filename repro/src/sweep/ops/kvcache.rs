//! candle-nn's kv caches (`kv_cache.rs`): every `append`, each called in turn with chunks of
//! keys and values `(b, h, s, d)` in the cell's layouts (a transposed chunk is what attention
//! code hands over after `transpose(1, 2)`), the sequence along dim 2. One op per kind of
//! cache, so a report names the cache it ran:
//!
//! - `kv_cache_append`: `Cache` (its buffer sized for the first chunk, so a later append grows
//!   it) and `KvCache`. Reference: the chunks concatenated.
//! - `concat_kv_cache_append`: `ConcatKvCache`, the same reference.
//! - `rotating_kv_cache_append`: `RotatingCache` and `RotatingKvCache`, and
//!   `scattered_kv_cache_append`: `ScatteredKvCache` through its `ScatteredCacheBuilder`'s
//!   indices and mask; each with a window longer than either chunk and with a first chunk at
//!   least the window. Reference: the layout each cache's own `positions` (or the builder's
//!   mask) says it holds (`harness::oracle::rotating_cache`, `scattered_cache`).
//! - `interleaved_kv_cache_append`: `InterleavedKvCache` (batch 1), k and v per position and
//!   head side by side (`harness::oracle::interleave_kv`).
//!
//! The appends that return keys and values return both concatenated along dim 2. Caches are
//! inference-only (the appends detach or write in place): no backward.

use super::inputs::{data, k};
use super::{Op, Reference, FLOATS};
use crate::sweep::cell::{Cell, Input, Rng};
use candle_core::Tensor;
use harness::host::HostTensor;
use harness::oracle::{self, OracleResult};

/// Knobs `[batch, heads, first chunk, second chunk, head dim]`; `batch_one` for the
/// interleaved cache, which takes one sequence.
fn kv_inputs(c: &Cell, rng: &mut Rng, batch_one: bool) -> Vec<Input> {
    let b = if batch_one { 1 } else { k(c, 0).min(2) };
    let (h, d) = (k(c, 1).min(2), k(c, 4).min(3));
    let (s1, s2, _) = chunks(c);
    vec![
        data("k1", c, c.dtype(), &[b, h, s1, d], rng),
        data("v1", c, c.dtype(), &[b, h, s1, d], rng),
        data("k2", c, c.dtype(), &[b, h, s2, d], rng),
        data("v2", c, c.dtype(), &[b, h, s2, d], rng),
    ]
}

/// The chunks' lengths and the bounded caches' window. Those caches' odd variants give the
/// first chunk at least the window (it replaces the whole buffer), the even ones a window
/// longer than either chunk (the second wraps around when both have two positions or more).
fn chunks(c: &Cell) -> (usize, usize, usize) {
    let (s1, s2) = (k(c, 2), k(c, 3));
    if c.op != ROTATING_KV_CACHE_APPEND.name && c.op != SCATTERED_KV_CACHE_APPEND.name {
        (s1, s2, 0)
    } else if c.variant % 2 == 1 {
        (s1 + s2, s2, s2 + 1)
    } else {
        (s1, s2, s1.max(s2) + 1)
    }
}

fn window(c: &Cell) -> usize {
    chunks(c).2
}

/// Two results concatenated along `dim` (the first refusal, if either refuses).
fn joined(a: OracleResult, b: OracleResult, dim: usize) -> Reference {
    match (a, b) {
        (Ok(a), Ok(b)) => oracle::cat(&[&a, &b], dim).into(),
        (Err(e), _) | (_, Err(e)) => Err::<HostTensor, _>(e).into(),
    }
}

/// Keys and values side by side along dim 2, as the ops return them.
fn both(k: OracleResult, v: OracleResult) -> Reference {
    joined(k, v, 2)
}

fn kv_cat(k: Tensor, v: Tensor) -> candle_core::Result<Tensor> {
    Tensor::cat(&[&k, &v], 2)
}

const GROWING: &[&str] = &[
    "Cache::new(2, first chunk): append k1, v1, k2, v2 (grows), current_data",
    "KvCache::new(2, first chunk): append (k1, v1), (k2, v2)",
];

pub(super) const KV_CACHE_APPEND: Op = Op {
    name: "kv_cache_append",
    call: "candle_nn::kv_cache::Cache::append / candle_nn::kv_cache::KvCache::append",
    dtypes: FLOATS,
    variants: GROWING,
    knobs: 5,
    inputs: |c, rng| kv_inputs(c, rng, false),
    candle: |c, t| {
        let s1 = t[0].dim(2)?;
        if c.variant == 0 {
            let mut cache = candle_nn::kv_cache::Cache::new(2, s1);
            for chunk in t {
                cache.append(chunk)?;
            }
            cache
                .current_data()?
                .ok_or_else(|| candle_core::Error::Msg("empty cache".into()))
        } else {
            let mut cache = candle_nn::kv_cache::KvCache::new(2, s1);
            cache.append(&t[0], &t[1])?;
            let (k, v) = cache.append(&t[2], &t[3])?;
            kv_cat(k, v)
        }
    },
    oracle: |c, h| match c.variant {
        0 => oracle::cat(&[&h[0], &h[1], &h[2], &h[3]], 2).into(),
        _ => both(
            oracle::cat(&[&h[0], &h[2]], 2),
            oracle::cat(&[&h[1], &h[3]], 2),
        ),
    },
    code: |c, v| {
        let (k1, v1, k2, v2) = (v[0], v[1], v[2], v[3]);
        if c.variant == 0 {
            format!(
                "{{ let mut cache = candle_nn::kv_cache::Cache::new(2, {k1}.dim(2)?); \
                 cache.append(&{k1})?; cache.append(&{v1})?; cache.append(&{k2})?; \
                 cache.append(&{v2})?; cache.current_data()?.unwrap() }}"
            )
        } else {
            format!(
                "{{ let mut cache = candle_nn::kv_cache::KvCache::new(2, {k1}.dim(2)?); \
                 cache.append(&{k1}, &{v1})?; let (k, v) = cache.append(&{k2}, &{v2})?; \
                 Tensor::cat(&[&k, &v], 2)? }}"
            )
        }
    },
    grads: &[],
    ..super::shape::BASE
};

pub(super) const CONCAT_KV_CACHE_APPEND: Op = Op {
    name: "concat_kv_cache_append",
    call: "candle_nn::kv_cache::ConcatKvCache::new(2).append(&k, &v)",
    dtypes: FLOATS,
    variants: &["append (k1, v1), (k2, v2)"],
    knobs: 5,
    inputs: |c, rng| kv_inputs(c, rng, false),
    candle: |_, t| {
        let mut cache = candle_nn::kv_cache::ConcatKvCache::new(2);
        cache.append(&t[0], &t[1])?;
        let (k, v) = cache.append(&t[2], &t[3])?;
        kv_cat(k, v)
    },
    oracle: |_, h| {
        both(
            oracle::cat(&[&h[0], &h[2]], 2),
            oracle::cat(&[&h[1], &h[3]], 2),
        )
    },
    code: |_, v| {
        format!(
            "{{ let mut cache = candle_nn::kv_cache::ConcatKvCache::new(2); \
             cache.append(&{}, &{})?; let (k, v) = cache.append(&{}, &{})?; \
             Tensor::cat(&[&k, &v], 2)? }}",
            v[0], v[1], v[2], v[3]
        )
    },
    grads: &[],
    ..super::shape::BASE
};

const BOUNDED: &[&str] = &[
    "RotatingCache::new(2, window): append k1, v1, k2, v2; window longer than each chunk",
    "RotatingCache::new(2, window): append k1, v1, k2, v2; first chunk at least the window",
    "RotatingKvCache::new(2, window): append (k1, v1), (k2, v2); window longer than each chunk",
    "RotatingKvCache::new(2, window): append (k1, v1), (k2, v2); first chunk at least the window",
];

const SCATTERED: &[&str] = &[
    "ScatteredCacheBuilder::new(b, window, …), make_cache; append (k1, v1), (k2, v2) with its indices_and_mask; window longer than each chunk",
    "ScatteredCacheBuilder::new(b, window, …), make_cache; append (k1, v1), (k2, v2) with its indices_and_mask; first chunk at least the window",
];

fn scattered(t: &[Tensor], context: usize) -> candle_core::Result<Tensor> {
    let (b, h, _, d) = t[0].dims4()?;
    let mut builder =
        candle_nn::kv_cache::ScatteredCacheBuilder::new(b, context, t[0].dtype(), t[0].device())?;
    let mut cache: candle_nn::kv_cache::ScatteredKvCache = builder.make_cache(h, d)?;
    let active = vec![true; b];
    let iam = builder.indices_and_mask(t[0].dim(2)?, &active)?;
    cache.append(&t[0], &t[1], &iam)?;
    let iam = builder.indices_and_mask(t[2].dim(2)?, &active)?;
    let (k, v) = cache.append(&t[2], &t[3], &iam)?;
    kv_cat(k, v)
}

pub(super) const ROTATING_KV_CACHE_APPEND: Op = Op {
    name: "rotating_kv_cache_append",
    call:
        "candle_nn::kv_cache::RotatingCache::append / candle_nn::kv_cache::RotatingKvCache::append",
    dtypes: FLOATS,
    variants: BOUNDED,
    knobs: 5,
    inputs: |c, rng| kv_inputs(c, rng, false),
    candle: |c, t| {
        let w = window(c);
        if c.variant < 2 {
            let mut cache = candle_nn::kv_cache::RotatingCache::new(2, w);
            cache.append(&t[0])?;
            cache.append(&t[1])?;
            cache.append(&t[2])?;
            cache.append(&t[3])
        } else {
            let mut cache = candle_nn::kv_cache::RotatingKvCache::new(2, w);
            cache.append(&t[0], &t[1])?;
            let (k, v) = cache.append(&t[2], &t[3])?;
            kv_cat(k, v)
        }
    },
    oracle: |c, h| {
        let w = window(c);
        if c.variant < 2 {
            oracle::rotating_cache(&[&h[0], &h[1], &h[2], &h[3]], 2, w).into()
        } else {
            both(
                oracle::rotating_cache(&[&h[0], &h[2]], 2, w),
                oracle::rotating_cache(&[&h[1], &h[3]], 2, w),
            )
        }
    },
    code: |c, v| {
        let (k1, v1, k2, v2) = (v[0], v[1], v[2], v[3]);
        let w = window(c);
        if c.variant < 2 {
            format!(
                "{{ let mut cache = candle_nn::kv_cache::RotatingCache::new(2, {w}); \
                 cache.append(&{k1})?; cache.append(&{v1})?; cache.append(&{k2})?; \
                 cache.append(&{v2})? }}"
            )
        } else {
            format!(
                "{{ let mut cache = candle_nn::kv_cache::RotatingKvCache::new(2, {w}); \
                 cache.append(&{k1}, &{v1})?; let (k, v) = cache.append(&{k2}, &{v2})?; \
                 Tensor::cat(&[&k, &v], 2)? }}"
            )
        }
    },
    grads: &[],
    ..super::shape::BASE
};

pub(super) const SCATTERED_KV_CACHE_APPEND: Op = Op {
    name: "scattered_kv_cache_append",
    call: "candle_nn::kv_cache::ScatteredKvCache::append(&k, &v, &builder.indices_and_mask(seq_len, &mask)?)",
    dtypes: FLOATS,
    variants: SCATTERED,
    knobs: 5,
    inputs: |c, rng| kv_inputs(c, rng, false),
    candle: |c, t| scattered(t, window(c)),
    oracle: |c, h| {
        let w = window(c);
        both(
            oracle::scattered_cache(&[&h[0], &h[2]], w),
            oracle::scattered_cache(&[&h[1], &h[3]], w),
        )
    },
    code: |c, v| {
        let (k1, v1, k2, v2) = (v[0], v[1], v[2], v[3]);
        let w = window(c);
        format!(
            "{{ let (b, h, _, d) = {k1}.dims4()?; \
             let mut builder = candle_nn::kv_cache::ScatteredCacheBuilder::new(b, {w}, {k1}.dtype(), {k1}.device())?; \
             let mut cache: candle_nn::kv_cache::ScatteredKvCache = builder.make_cache(h, d)?; \
             let iam = builder.indices_and_mask({k1}.dim(2)?, &vec![true; b])?; \
             cache.append(&{k1}, &{v1}, &iam)?; \
             let iam = builder.indices_and_mask({k2}.dim(2)?, &vec![true; b])?; \
             let (k, v) = cache.append(&{k2}, &{v2}, &iam)?; \
             Tensor::cat(&[&k, &v], 2)? }}"
        )
    },
    grads: &[],
    ..super::shape::BASE
};

pub(super) const INTERLEAVED_KV_CACHE_APPEND: Op = Op {
    name: "interleaved_kv_cache_append",
    call: "candle_nn::kv_cache::InterleavedKvCache::new(d).append(&k, &v)",
    dtypes: FLOATS,
    variants: &["append (k1, v1), (k2, v2)"],
    knobs: 5,
    inputs: |c, rng| kv_inputs(c, rng, true),
    candle: |_, t| {
        let mut cache = candle_nn::kv_cache::InterleavedKvCache::new(t[0].dim(3)?);
        cache.append(&t[0], &t[1])?;
        cache.append(&t[2], &t[3])
    },
    oracle: |_, h| {
        joined(
            oracle::interleave_kv(&h[0], &h[1]),
            oracle::interleave_kv(&h[2], &h[3]),
            0,
        )
    },
    code: |_, v| {
        format!(
            "{{ let mut cache = candle_nn::kv_cache::InterleavedKvCache::new({k1}.dim(3)?); \
             cache.append(&{k1}, &{v1})?; cache.append(&{k2}, &{v2})? }}",
            k1 = v[0],
            v1 = v[1],
            k2 = v[2],
            v2 = v[3]
        )
    },
    grads: &[],
    ..super::shape::BASE
};
