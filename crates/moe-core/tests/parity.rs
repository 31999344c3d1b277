//! Host syncs per forward of every strategy, on the device named by `CANDLE_REPRO_DEVICE`
//! (default cpu).
//!
//! The parity of every strategy × dtype used to live here, against moe-core's own `dense` on the
//! CPU in f32 (so dense/f32/cpu compared the code with itself, and a bug every strategy shares,
//! such as a dropped residual, passed). It is now tests/reference_parity.rs, against a plain-Rust
//! f64 reference that shares no code with moe-core, on the same configuration and data and more.

use candle_core::{DType, Tensor};
use moe_core::{Dispatch, MoeBlock, MoeConfig, SortedCapacity};

/// A small f32 block (d 8, 4 experts, top-2) on the target, and 10 tokens for it.
fn block_and_input() -> (MoeBlock, Tensor) {
    let dev = harness::device::test_target();
    let block = MoeBlock::new(
        MoeConfig {
            d: 8,
            e: 4,
            k: 2,
            f: 8,
            dtype: DType::F32,
        },
        &dev,
    )
    .unwrap();
    let x = Tensor::randn(0f32, 1.0, (10, 8), &dev).unwrap();
    (block, x)
}

#[test]
fn host_syncs_per_forward() {
    let (block, x) = block_and_input();
    let mut counts = Vec::new();
    for d in Dispatch::ALL {
        let before = block.host_syncs();
        block.forward(&x, d).unwrap();
        counts.push((d.name(), block.host_syncs() - before));
    }
    // An exhaustive match: a new strategy must state its count here.
    let expected = |d: Dispatch| match d {
        // `sorted` with its default layout (`SortedCapacity::Busiest`): one read of the top-K ids.
        Dispatch::HostTopK
        | Dispatch::Gather
        | Dispatch::ScatterAdd
        | Dispatch::OneHotMatmul
        | Dispatch::Sorted => 1,
        Dispatch::Dense => 0,
    };
    assert_eq!(
        counts,
        Dispatch::ALL
            .into_iter()
            .map(|d| (d.name(), expected(d)))
            .collect::<Vec<_>>()
    );
}

/// `sorted`'s two layouts: `Tokens` reads nothing back, `Busiest` (the default) reads the top-K
/// ids once per forward to size its capacity.
#[test]
fn sorted_host_syncs_per_layout() {
    let (block, x) = block_and_input();
    assert_eq!(block.sorted_capacity(), SortedCapacity::Busiest);
    for (capacity, want) in [(SortedCapacity::Tokens, 0), (SortedCapacity::Busiest, 1)] {
        block.set_sorted_capacity(capacity);
        let before = block.host_syncs();
        block.forward(&x, Dispatch::Sorted).unwrap();
        block.route(&x, Dispatch::Sorted).unwrap();
        assert_eq!(
            block.host_syncs() - before,
            2 * want,
            "{capacity:?}: forward + route"
        );
    }
}
