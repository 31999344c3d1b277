//! Every strategy in `Dispatch::ALL` against the plain-Rust f64 reference in `reference/`, on the
//! device named by `CANDLE_REPRO_DEVICE` (default cpu), in f32, f16 and bf16: the output and the
//! gradient of `loss = Σ y ⊙ w` for x, the router and every expert's weights.
//!
//! The reference shares no code with moe-core or candle; it reads the block's weights (already
//! rounded to the dtype under test) as `Vec<f64>`, so it measures the block's arithmetic, not the
//! rounding of its inputs. A disagreement is a finding: tolerances are per dtype and are never
//! loosened to hide one. Strategies are taken from `Dispatch::ALL`, so a new one is checked
//! without editing this file; what each is expected to do is in `expect`.
//!
//! Cases: `generic` (T=6, D=4, F=8, E=4, K=2), `ties` (the same sizes, with exact ties inside and
//! across the top-K boundary and an expert that serves no token) and `wide` (T=24, D=16, F=32,
//! E=4, K=2: the configuration and data tests/parity.rs used against moe-core's own `dense`).
//! Every token's routing is at least 0.05 in probability away from changing (ties apart), so
//! rounding the logits to bf16 (~1e-2 relative) cannot move it: a difference is a real one.

mod reference;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use moe_core::{Dispatch, MoeBlock, MoeConfig};
use reference::{Gates, Moe, Routing};
use rstest::rstest;

fn target() -> Device {
    harness::device::test_target()
}

/// Largest |got − want| over the largest |want| of one tensor, per dtype: about 10–30 units of
/// the dtype's rounding (f32 6e-8, f16 4.9e-4, bf16 3.9e-3). The block rounds every
/// intermediate (logits, projections, silu, products, the weighted sum) to its dtype, and the
/// sums here have ≤ 32 terms, so a correct block is a few units off; a wrong term (a missing
/// residual, an unrenormalised gate, a wrong expert) costs O(1). Measured on the CPU over the
/// three cases and every strategy: f32 ≤ 2.7e-7, f16 ≤ 2.1e-3, bf16 ≤ 1.3e-2 (2.2e-3 / 3.9e-3
/// for outputs, the rest gradients: the router's, through the f32 softmax, and the experts'
/// gate projections are the largest). Softmax runs in f32 in every dtype.
fn tolerance(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => 2e-6,
        DType::F16 => 5e-3,
        DType::BF16 => 4e-2,
        other => panic!("no tolerance for {other:?}"),
    }
}

/// What a strategy is expected to do in candle 0.11.1.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// Output and every gradient match the reference with differentiable gates.
    Trains,
    /// mixtral.rs's algorithm: the gates are host constants. The router gets no gradient at all
    /// (`None` or exactly zero), and dx has no routing term (the reference's `HostConstants`).
    HostConstantGates,
    /// The output matches, and the backward pass fails upstream with this message; it must keep
    /// failing: once it succeeds, this test fails until the expectation is updated.
    BackwardFails(&'static str),
}

fn expect(dispatch: Dispatch) -> Expect {
    match dispatch {
        Dispatch::HostTopK => Expect::HostConstantGates,
        // candle's ScatterAdd backward builds its mask from a source shaped like the output and
        // fails when the index has more rows (T·K > T for K ≥ 2, every case here): repro case
        // `scatter_add_backward`, repro/expected.toml, ISSUES.md.
        Dispatch::ScatterAdd => Expect::BackwardFails("shape mismatch in scatter"),
        _ => Expect::Trains,
    }
}

/// A fixed input: f32 weights and data on the CPU.
struct Case {
    config: MoeConfig,
    router: Tensor,
    gate: Tensor,
    up: Tensor,
    down: Tensor,
    x: Tensor,
    w: Tensor,
}

fn host(t: &Tensor) -> Vec<f64> {
    t.to_device(&Device::Cpu)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

/// The reference's view of a block: its weights as f64, nothing else.
fn reference_of(block: &MoeBlock) -> Moe {
    let c = block.config;
    Moe {
        d: c.d,
        e: c.e,
        k: c.k,
        f: c.f,
        router: host(block.router.as_tensor()),
        gate: block
            .experts
            .iter()
            .map(|x| host(x.gate.as_tensor()))
            .collect(),
        up: block
            .experts
            .iter()
            .map(|x| host(x.up.as_tensor()))
            .collect(),
        down: block
            .experts
            .iter()
            .map(|x| host(x.down.as_tensor()))
            .collect(),
    }
}

/// Uniform in [-scale, scale), from SplitMix64.
fn det(seed: &mut u64, shape: &[usize], scale: f32) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| {
            ((harness::host::splitmix64(seed) >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0)
                * scale
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn routing_of(moe: &Moe, x: &Tensor) -> Routing {
    moe.route(&host(x))
}

/// Rows of `candidates` picked by `keep(routing, row)`, in order.
fn pick(candidates: &Tensor, rows: &[usize]) -> Tensor {
    let idx: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
    candidates
        .index_select(&Tensor::new(idx.as_slice(), &Device::Cpu).unwrap(), 0)
        .unwrap()
}

const MARGIN: f64 = 0.05;

fn case(name: &str) -> Case {
    let (t, d, e, k, f, seed) = match name {
        "generic" => (6, 4, 4, 2, 8, 16_2026u64),
        "ties" => (6, 4, 4, 2, 8, 16_2027),
        "wide" => (24, 16, 4, 2, 32, 20261126),
        other => panic!("no case {other}"),
    };
    let config = MoeConfig {
        d,
        e,
        k,
        f,
        dtype: DType::F32,
    };
    let mut seed = seed;
    let s = &mut seed;
    let mut router = det(s, &[d, e], if name == "wide" { 0.3 } else { 1.0 });
    let mut gate = det(s, &[e, d, f], 0.4);
    let mut up = det(s, &[e, d, f], 0.4);
    let mut down = det(s, &[e, f, d], 0.3);
    let mut candidates = det(s, &[256, d], 1.7);
    if name == "ties" {
        // Positive x; expert 1's router column very negative (it serves no token); experts 2
        // and 3 share a column, so their probabilities are exactly equal in every dtype.
        candidates = (candidates.abs().unwrap() + 0.1).unwrap();
        let cols: Vec<[f32; 4]> = vec![
            [1.2, -0.3, 0.4, -0.5],
            [-3.0; 4],
            [-0.4, 0.7, 0.1, 0.5],
            [-0.4, 0.7, 0.1, 0.5],
        ];
        let v: Vec<f32> = (0..d)
            .flat_map(|i| cols.iter().map(move |c| c[i]))
            .collect();
        router = Tensor::from_vec(v, (d, e), &Device::Cpu).unwrap();
        // Experts 2 and 3 also share their weights, so which of two tied experts a backend
        // picks (candle's CPU and CUDA top-K break exact ties differently) cannot change the
        // output or dx; their gradients are compared pooled (see `pool_tied`).
        let twin = |w: Tensor| {
            let parts: Vec<Tensor> = [0, 1, 2, 2].iter().map(|&i| w.get(i).unwrap()).collect();
            Tensor::stack(&parts, 0).unwrap()
        };
        gate = twin(gate);
        up = twin(up);
        down = twin(down);
    }
    let block = MoeBlock::from_tensors(config, &router, &gate, &up, &down).unwrap();
    let moe = reference_of(&block);
    let r = routing_of(&moe, &candidates);
    let ok: Vec<usize> = (0..256).filter(|&i| r.margin(i) >= MARGIN).collect();
    let rows: Vec<usize> = if name == "ties" {
        let boundary = ok.iter().filter(|&&i| r.boundary_tie(i)).take(t / 2);
        let inner = ok.iter().filter(|&&i| r.inner_tie(i)).take(t - t / 2);
        boundary.chain(inner).copied().collect()
    } else {
        ok.into_iter().take(t).collect()
    };
    assert_eq!(rows.len(), t, "{name}: not enough well-separated tokens");
    let x = pick(&candidates, &rows);
    let w = det(s, &[t, d], 1.0);
    Case {
        config,
        router,
        gate,
        up,
        down,
        x,
        w,
    }
}

/// The `ties` case's gradients with experts 2 and 3 pooled: which of the two tied (and
/// identical) experts serves a token is the backend's tie-break, so only their sum is defined —
/// the router's columns 2 and 3 summed, each of gate/up/down of the two summed.
type Named = Vec<(String, Option<Vec<f64>>, Option<Vec<f64>>)>;
fn pool_tied(named: Named, e: usize) -> Named {
    let sum = |a: &Option<Vec<f64>>, b: &Option<Vec<f64>>| -> Option<Vec<f64>> {
        match (a, b) {
            (Some(a), Some(b)) => Some(a.iter().zip(b).map(|(x, y)| x + y).collect()),
            (Some(a), None) | (None, Some(a)) => Some(a.clone()),
            (None, None) => None,
        }
    };
    let router_pooled = |v: &Option<Vec<f64>>| {
        v.as_ref().map(|v| {
            v.chunks(e)
                .flat_map(|row| [row[0], row[1], row[2] + row[3]])
                .collect::<Vec<f64>>()
        })
    };
    let mut out = Vec::new();
    let (router, rest) = named.split_first().expect("the router comes first");
    out.push((
        format!("{} (columns 2 and 3 pooled)", router.0),
        router_pooled(&router.1),
        router_pooled(&router.2),
    ));
    // rest: expert i's gate, up, down at 3i, 3i+1, 3i+2.
    for (i, item) in rest.iter().enumerate() {
        let expert = i / 3;
        if expert == 2 {
            let twin = &rest[i + 3];
            out.push((
                format!("{} + expert3", item.0),
                sum(&item.1, &twin.1),
                sum(&item.2, &twin.2),
            ));
        } else if expert != 3 {
            out.push(item.clone());
        }
    }
    out
}

/// Largest |got − want| / largest |want|.
fn rel_err(want: &[f64], got: &[f64]) -> f64 {
    assert_eq!(want.len(), got.len());
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
    want.iter()
        .zip(got)
        .map(|(a, b)| (a - b).abs() / scale)
        .fold(0.0, f64::max)
}

/// Compares one gradient; `None` on the reference's side means "no gradient".
fn compare(
    what: &str,
    want: Option<&[f64]>,
    got: Option<&Tensor>,
    tol: f64,
    worst: &mut (f64, String),
    failures: &mut Vec<String>,
) {
    let got = got.map(host);
    let all_zero = |v: &[f64]| v.iter().all(|x| *x == 0.0);
    match (want, got) {
        (None, None) => {}
        (None, Some(g)) if all_zero(&g) => {}
        (None, Some(g)) => failures.push(format!(
            "{what}: should get no gradient, got one of max |·| {:.2e}",
            g.iter().fold(0f64, |m, v| m.max(v.abs()))
        )),
        // An expert that served no token: its gradient is exactly zero, absent or not.
        (Some(w), None) if all_zero(w) => {}
        (Some(w), Some(g)) if all_zero(w) => {
            if !all_zero(&g) {
                failures.push(format!(
                    "{what}: should be exactly zero (idle expert), is not"
                ));
            }
        }
        (Some(_), None) => failures.push(format!("{what}: no gradient")),
        (Some(w), Some(g)) => {
            let e = rel_err(w, &g);
            if e > worst.0 || e.is_nan() {
                *worst = (e, what.to_string());
            }
            if e.is_nan() || e > tol {
                failures.push(format!(
                    "{what}: differs from the reference by {e:.2e} (tolerance {tol:.0e})"
                ));
            }
        }
    }
}

/// The case's weights on `dev`, as a block in `dtype`.
fn block_on(case: &Case, dtype: DType, dev: &Device) -> MoeBlock {
    let to = |t: &Tensor| t.to_device(dev).unwrap();
    MoeBlock::from_tensors(
        MoeConfig {
            dtype,
            ..case.config
        },
        &to(&case.router),
        &to(&case.gate),
        &to(&case.up),
        &to(&case.down),
    )
    .unwrap()
}

/// The reference's routing on the rounded inputs is the one on the case's f32 inputs, and the
/// `ties` case has its idle expert and both kinds of tie.
fn check_routing(name: &str, dtype: DType, case: &Case, routing: &Routing) {
    assert_eq!(
        routing.chosen,
        routing_of(
            &reference_of(
                &MoeBlock::from_tensors(
                    case.config,
                    &case.router,
                    &case.gate,
                    &case.up,
                    &case.down
                )
                .unwrap()
            ),
            &case.x
        )
        .chosen,
        "{name} {dtype:?}: rounding the inputs moved the reference's routing; pick other data"
    );
    if name == "ties" {
        let t = routing.chosen.len();
        assert_eq!(routing.load(case.config.e)[1], 0, "expert 1 serves tokens");
        assert!((0..t).any(|i| routing.boundary_tie(i)) && (0..t).any(|i| routing.inner_tie(i)));
    }
}

/// One case in one dtype: the block on the device, its inputs, and the reference on exactly the
/// values the block holds.
struct Setup<'a> {
    name: &'a str,
    block: &'a MoeBlock,
    x: &'a Var,
    w: &'a Tensor,
    moe: &'a Moe,
    xr: &'a [f64],
    wr: &'a [f64],
    want_y: &'a [f64],
    tol: f64,
}

/// The gates the reference assumes and the gradients, when the backward pass went as
/// `expectation` says; what went otherwise goes to `fail`.
fn gates_of(
    expectation: Expect,
    backward: candle_core::Result<GradStore>,
    fail: &mut Vec<String>,
) -> Option<(Gates, GradStore)> {
    match (expectation, backward) {
        (Expect::BackwardFails(msg), Err(e)) => {
            if !e.to_string().contains(msg) {
                fail.push(format!("backward fails as expected, but with `{e}`"));
            }
            None
        }
        (Expect::BackwardFails(_), Ok(_)) => {
            fail.push(
                "backward now succeeds: fixed upstream? make its expectation `Trains` and \
                 update repro/expected.toml and ISSUES.md"
                    .into(),
            );
            None
        }
        (_, Err(e)) => {
            fail.push(format!("backward fails: {e}"));
            None
        }
        (Expect::HostConstantGates, Ok(g)) => Some((Gates::HostConstants, g)),
        (Expect::Trains, Ok(g)) => Some((Gates::Differentiable, g)),
    }
}

/// dx and every parameter's gradient against the reference's under `mode` (experts 2 and 3
/// pooled in the `ties` case).
fn compare_gradients(
    s: &Setup,
    mode: Gates,
    grads: &GradStore,
    worst: &mut (f64, String),
    fail: &mut Vec<String>,
) {
    let (moe, tol) = (s.moe, s.tol);
    let want = moe.gradients(s.xr, s.wr, mode);
    compare(
        "dx",
        Some(&want.x),
        grads.get(s.x.as_tensor()),
        tol,
        worst,
        fail,
    );
    let mut want_params: Vec<Option<&[f64]>> = vec![want.router.as_deref()];
    for i in 0..moe.e {
        want_params.extend([
            Some(want.gate[i].as_slice()),
            Some(want.up[i].as_slice()),
            Some(want.down[i].as_slice()),
        ]);
    }
    let named: Named = s
        .block
        .var_names()
        .into_iter()
        .zip(s.block.vars())
        .zip(want_params)
        .map(|((n, var), want)| {
            (
                n,
                want.map(<[f64]>::to_vec),
                grads.get(var.as_tensor()).map(host),
            )
        })
        .collect();
    let named = if s.name == "ties" {
        pool_tied(named, moe.e)
    } else {
        named
    };
    for (n, want, got) in named {
        let got = got.map(|g| Tensor::from_vec(g.clone(), g.len(), &Device::Cpu).unwrap());
        compare(
            &format!("d {n}"),
            want.as_deref(),
            got.as_ref(),
            tol,
            worst,
            fail,
        );
    }
}

/// One strategy: its output, then its backward pass as `expect` says and its gradients; what
/// differs goes to `failures`, prefixed with `tag`.
fn check_strategy(s: &Setup, dispatch: Dispatch, tag: &str, failures: &mut Vec<String>) {
    let tol = s.tol;
    let expectation = expect(dispatch);
    assert_eq!(
        dispatch.trains_router(),
        expectation != Expect::HostConstantGates,
        "{tag}: moe-core's trains_router() disagrees with this test's expectation"
    );
    let mut fail = Vec::new();
    let y = match s.block.forward(s.x.as_tensor(), dispatch) {
        Ok(y) => y,
        Err(e) => {
            failures.push(format!("{tag}: forward fails: {e}"));
            return;
        }
    };
    let mut worst = (0.0, String::new());
    let ey = rel_err(s.want_y, &host(&y));
    if ey.is_nan() || ey > tol {
        fail.push(format!(
            "output differs from the reference by {ey:.2e} (tolerance {tol:.0e})"
        ));
    }
    let backward = (y * s.w)
        .and_then(|l| l.sum_all())
        .and_then(|l| l.backward());
    if let Some((mode, grads)) = gates_of(expectation, backward, &mut fail) {
        compare_gradients(s, mode, &grads, &mut worst, &mut fail);
    }
    if worst.1.is_empty() {
        println!("{tag}: output {ey:.1e}, no gradients compared");
    } else {
        println!(
            "{tag}: output {ey:.1e}, worst gradient {:.1e} ({})",
            worst.0, worst.1
        );
    }
    failures.extend(fail.into_iter().map(|f| format!("{tag}: {f}")));
}

#[rstest]
fn every_strategy_matches_the_reference(
    #[values("generic", "ties", "wide")] name: &str,
    #[values("f32", "f16", "bf16")] dtype: &str,
) {
    let dtype = match dtype {
        "f32" => DType::F32,
        "f16" => DType::F16,
        _ => DType::BF16,
    };
    let case = case(name);
    let dev = target();
    let to = |t: &Tensor| t.to_device(&dev).unwrap();
    let block = block_on(&case, dtype, &dev);
    let x = Var::from_tensor(&to(&case.x).to_dtype(dtype).unwrap()).unwrap();
    let w = to(&case.w).to_dtype(dtype).unwrap();
    // The reference, on exactly the values the block holds.
    let moe = reference_of(&block);
    let (xr, wr) = (host(x.as_tensor()), host(&w));
    let routing = moe.route(&xr);
    check_routing(name, dtype, &case, &routing);
    let want_y = moe.forward(&xr);
    let setup = Setup {
        name,
        block: &block,
        x: &x,
        w: &w,
        moe: &moe,
        xr: &xr,
        wr: &wr,
        want_y: &want_y,
        tol: tolerance(dtype),
    };
    let mut failures = Vec::new();
    for dispatch in Dispatch::ALL {
        let tag = format!("{name} {dtype:?} {dispatch} on {dev:?}");
        check_strategy(&setup, dispatch, &tag, &mut failures);
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
