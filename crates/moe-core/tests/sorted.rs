//! The `sorted` strategy's edge cases against `dense` (every expert on every token, no index
//! ops), in f64 on the device named by `CANDLE_REPRO_DEVICE` (default cpu; f32 on Metal, which
//! has no f64): routing ties, experts that get no token, run-to-run determinism, the padding
//! rows' zero index, and its row gather's gradient against candle's own `index_select` gradient.
//! Each check runs on both capacity layouts (`SortedCapacity::Tokens`, routed on the
//! device; `SortedCapacity::Busiest`, the default, counting-sorted on the host).

use candle_core::{backprop::GradStore, DType, Device, Tensor, Var};
use moe_core::{CapacityLayout, Dispatch, GatherRows, MoeBlock, MoeConfig, SortedCapacity};

/// Both layouts of `sorted`; every check below runs on each.
const LAYOUTS: [SortedCapacity; 2] = [SortedCapacity::Tokens, SortedCapacity::Busiest];

const TOKENS: usize = 6;

fn target() -> Device {
    harness::device::test_target()
}

fn dtype(dev: &Device) -> DType {
    if dev.is_metal() {
        DType::F32
    } else {
        DType::F64
    }
}

/// Absolute tolerance of `sorted` against `dense`: the two sum in different orders.
fn tolerance(dev: &Device) -> f64 {
    if dev.is_metal() {
        1e-5
    } else {
        1e-12
    }
}

fn config(dev: &Device) -> MoeConfig {
    MoeConfig {
        d: 3,
        e: 4,
        k: 2,
        f: 5,
        dtype: dtype(dev),
    }
}

fn seq(n: usize, a: f64, b: f64) -> Vec<f64> {
    (0..n).map(|i| ((i as f64 * a + b).sin()) * 0.8).collect()
}

fn tensor(v: Vec<f64>, shape: &[usize], dev: &Device) -> Tensor {
    Tensor::from_vec(v, shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype(dev))
        .unwrap()
        .to_device(dev)
        .unwrap()
}

fn block_with_router(router: Vec<f64>, dev: &Device) -> MoeBlock {
    let c = config(dev);
    let (d, e, f) = (c.d, c.e, c.f);
    let t = |v: Vec<f64>, shape: &[usize]| tensor(v, shape, dev);
    MoeBlock::from_tensors(
        c,
        &t(router, &[d, e]),
        &t(seq(e * d * f, 0.9, 0.1), &[e, d, f]),
        &t(seq(e * d * f, 1.3, 0.7), &[e, d, f]),
        &t(seq(e * f * d, 0.7, 0.2), &[e, f, d]),
    )
    .unwrap()
}

/// Output and the gradient of every parameter of `sum(forward(x) · r)`.
fn run(block: &MoeBlock, x: &Tensor, dispatch: Dispatch) -> (Tensor, GradStore) {
    let d = block.config.d;
    let r = tensor(seq(TOKENS * d, 0.37, 1.1), &[TOKENS, d], x.device());
    let out = block.forward(x, dispatch).unwrap();
    let grads = (&out * r).unwrap().sum_all().unwrap().backward().unwrap();
    (out, grads)
}

fn values(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

/// The gradient of `sum(t · w)` with respect to `wrt`.
fn weighted_grad(t: &Tensor, w: &Tensor, wrt: &Var) -> Tensor {
    (t * w)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap()
        .get(wrt.as_tensor())
        .unwrap()
        .clone()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    values(a)
        .iter()
        .zip(values(b))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// `sorted` against `dense` on the same block and input: output and every gradient, under each
/// layout (the block is left with the last one set).
fn assert_sorted_matches_dense(block: &MoeBlock, x: &Tensor) {
    let tol = tolerance(x.device());
    let (want, want_grads) = run(block, x, Dispatch::Dense);
    for layout in LAYOUTS {
        block.set_sorted_capacity(layout);
        let (got, got_grads) = run(block, x, Dispatch::Sorted);
        let e = max_abs_diff(&want, &got);
        assert!(e <= tol, "{layout:?}: output differs from dense by {e:e}");
        for (name, var) in block.var_names().iter().zip(block.vars()) {
            let (want, got) = match (
                want_grads.get(var.as_tensor()),
                got_grads.get(var.as_tensor()),
            ) {
                (Some(w), Some(g)) => (w.clone(), g.clone()),
                // No gradient at all only where dense has none either.
                (None, None) => continue,
                (w, g) => panic!(
                    "{layout:?}: {name}: dense gradient {}, sorted gradient {}",
                    w.is_some(),
                    g.is_some()
                ),
            };
            let e = max_abs_diff(&want, &got);
            assert!(
                e <= tol,
                "{layout:?}: gradient of {name} differs from dense by {e:e}"
            );
        }
    }
}

#[test]
fn ties_route_like_dense() {
    // A zero router: every probability is exactly 1/E, so top-K is all ties. Whatever order the
    // sort picks, it picks it for every token alike: K experts get all T tokens, the others none.
    let dev = target();
    let c = config(&dev);
    let block = block_with_router(vec![0.0; c.d * c.e], &dev);
    let x = tensor(seq(TOKENS * c.d, 2.3, 0.5), &[TOKENS, c.d], &dev);
    assert_sorted_matches_dense(&block, &x);
    for layout in LAYOUTS {
        block.set_sorted_capacity(layout);
        block.forward(&x, Dispatch::Sorted).unwrap();
        // Tokens: C = T always; Busiest: K experts serve all T tokens.
        assert_eq!(
            block.last_capacity_layout(),
            Some(CapacityLayout {
                experts: c.e,
                capacity: TOKENS,
                routed: TOKENS * c.k,
            }),
            "{layout:?}"
        );
    }
}

#[test]
fn an_expert_without_tokens_gets_a_zero_gradient() {
    // Positive inputs and a strongly negative router column: the last expert is never in a
    // token's top 2.
    let dev = target();
    let c = config(&dev);
    let (d, e) = (c.d, c.e);
    let mut router = seq(d * e, 1.7, 0.3);
    for row in 0..d {
        router[row * e + e - 1] = -5.0;
    }
    let block = block_with_router(router, &dev);
    let x = tensor(
        seq(TOKENS * d, 2.3, 0.5)
            .iter()
            .map(|v| v.abs() + 0.5)
            .collect(),
        &[TOKENS, d],
        &dev,
    );
    let probs = block
        .probs(&x)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    assert!(
        probs
            .iter()
            .all(|p| moe_core::host_topk(p, c.k).iter().all(|&i| i != e - 1)),
        "the fixed data should leave the last expert without tokens"
    );
    assert_sorted_matches_dense(&block, &x);
    for layout in LAYOUTS {
        block.set_sorted_capacity(layout);
        let (_, grads) = run(&block, &x, Dispatch::Sorted);
        let idle = &block.experts[e - 1];
        for var in [&idle.gate, &idle.up, &idle.down] {
            let g = grads
                .get(var.as_tensor())
                .expect("stacked: every expert gets a gradient");
            assert!(
                values(g).iter().all(|v| *v == 0.0),
                "{layout:?}: idle expert: {g}"
            );
        }
        let l = block.last_capacity_layout().unwrap();
        assert_eq!(l.routed, TOKENS * c.k);
        assert!(l.rows() >= l.routed);
    }
}

#[test]
fn runs_are_bitwise_identical() {
    let dev = target();
    let c = config(&dev);
    let block = block_with_router(seq(c.d * c.e, 1.7, 0.3), &dev);
    let x = tensor(seq(TOKENS * c.d, 2.3, 0.5), &[TOKENS, c.d], &dev);
    for layout in LAYOUTS {
        block.set_sorted_capacity(layout);
        let (out1, grads1) = run(&block, &x, Dispatch::Sorted);
        let (out2, grads2) = run(&block, &x, Dispatch::Sorted);
        assert_eq!(values(&out1), values(&out2), "{layout:?}");
        for var in block.vars() {
            assert_eq!(
                values(grads1.get(var.as_tensor()).unwrap()),
                values(grads2.get(var.as_tensor()).unwrap()),
                "{layout:?}"
            );
        }
    }
}

#[test]
fn gather_rows_gradient_is_the_index_select_gradient() {
    // A token-per-row gather whose gradient sums K = 2 rows per token (fold 2), and a
    // permutation with its inverse (fold 1), against candle's index_select (differentiated by
    // index_add).
    let dev = target();
    let src = Var::from_tensor(&tensor(seq(4 * 3, 0.9, 0.4), &[4, 3], &dev)).unwrap();
    let weights = tensor(seq(8 * 3, 0.3, 0.2), &[8, 3], &dev);
    // Rows in expert order: row j holds (token, slot) `row_slot[j]`, token = slot / 2.
    let row_slot: Vec<u32> = vec![3, 0, 6, 5, 1, 7, 2, 4];
    let mut slot_row = vec![0u32; 8];
    for (row, &slot) in row_slot.iter().enumerate() {
        slot_row[slot as usize] = row as u32;
    }
    let row_token: Vec<u32> = row_slot.iter().map(|s| s / 2).collect();
    let idx = |v: &[u32]| Tensor::new(v, &dev).unwrap();
    let (row_token, slot_row, row_slot) = (idx(&row_token), idx(&slot_row), idx(&row_slot));
    let tol = tolerance(&dev);

    let ours = GatherRows::apply(src.as_tensor(), &row_token, &slot_row, 2).unwrap();
    let theirs = src.as_tensor().index_select(&row_token, 0).unwrap();
    assert_eq!(values(&ours), values(&theirs));
    let e = max_abs_diff(
        &weighted_grad(&ours, &weights, &src),
        &weighted_grad(&theirs, &weights, &src),
    );
    assert!(e <= tol, "fold 2: {e:e}");

    let rows = Var::from_tensor(&weights).unwrap();
    let ours = GatherRows::apply(rows.as_tensor(), &slot_row, &row_slot, 1).unwrap();
    let theirs = rows.as_tensor().index_select(&slot_row, 0).unwrap();
    assert_eq!(values(&ours), values(&theirs));
    let w = tensor(seq(8 * 3, 1.1, 0.6), &[8, 3], &dev);
    let e = max_abs_diff(
        &weighted_grad(&ours, &w, &rows),
        &weighted_grad(&theirs, &w, &rows),
    );
    assert!(e <= tol, "fold 1: {e:e}");
}

#[test]
fn padding_index_reads_a_zero_row() {
    // The capacity layout's padding rows rely on candle's index_select writing zeros for the
    // index u32::MAX (CPU, CUDA and Metal kernels of candle 0.11.1): pinned here.
    let dev = target();
    let src = Tensor::ones((2, 3), DType::F32, &dev).unwrap();
    let index = Tensor::new(&[1u32, u32::MAX, 0], &dev).unwrap();
    let out = GatherRows::apply(&src, &index, &index, 1).unwrap();
    assert_eq!(
        out.to_device(&Device::Cpu)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap(),
        vec![vec![1.0; 3], vec![0.0; 3], vec![1.0; 3]]
    );
}

#[test]
fn shaped_gather_matches_reshape_and_index_select() {
    // apply_shaped reads a (2, 4, 3) source as 8 rows of 3 and shapes the result (4, 2, 3):
    // the same values and source gradient as reshape → index_select → reshape (fold 2: the
    // gradient index lists each source row's two output rows).
    let dev = target();
    let src = Var::from_tensor(&tensor(seq(2 * 4 * 3, 0.9, 0.4), &[2, 4, 3], &dev)).unwrap();
    let index: Vec<u32> = vec![5, 0, 7, 2, 1, 6, 3, 4];
    let mut grad_index = vec![0u32; 16];
    for (out_row, &row) in index.iter().enumerate() {
        // Each source row read once here; fold 2 pairs it with a padding read (zero row).
        grad_index[2 * row as usize] = out_row as u32;
        grad_index[2 * row as usize + 1] = u32::MAX;
    }
    let (index, grad_index) = (
        Tensor::new(index.as_slice(), &dev).unwrap(),
        Tensor::new(grad_index.as_slice(), &dev).unwrap(),
    );
    let weights = tensor(seq(8 * 3, 0.3, 0.2), &[4, 2, 3], &dev);
    let ours =
        GatherRows::apply_shaped(src.as_tensor(), &index, &grad_index, 2, (4, 2, 3)).unwrap();
    let theirs = src
        .as_tensor()
        .reshape((8, 3))
        .unwrap()
        .index_select(&index, 0)
        .unwrap()
        .reshape((4, 2, 3))
        .unwrap();
    assert_eq!(ours.dims(), &[4, 2, 3]);
    assert_eq!(values(&ours), values(&theirs));
    let (g_ours, g_theirs) = (
        weighted_grad(&ours, &weights, &src),
        weighted_grad(&theirs, &weights, &src),
    );
    assert_eq!(g_ours.dims(), &[2, 4, 3]);
    let e = max_abs_diff(&g_ours, &g_theirs);
    assert!(e <= tolerance(&dev), "{e:e}");
}
