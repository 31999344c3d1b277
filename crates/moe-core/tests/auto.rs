//! `auto` picks, by measurement, a strategy that trains every parameter, and reports why the
//! others lost or could not run.

use candle_core::{DType, Device, Tensor};
use moe_core::{MoeBlock, MoeConfig};

#[test]
fn auto_picks_a_measured_router_training_strategy() -> candle_core::Result<()> {
    let config = MoeConfig {
        d: 8,
        e: 4,
        k: 2,
        f: 16,
        dtype: DType::F32,
    };
    let block = MoeBlock::new(config, &Device::Cpu)?;
    let x = Tensor::randn(0f32, 1.0, (16, 8), &Device::Cpu)?;
    let choice = block.auto_dispatch(&x, 2)?;
    assert!(choice.dispatch.trains_router());
    let picked = choice
        .timings_ms
        .iter()
        .find(|(d, _)| *d == choice.dispatch)
        .expect("the pick was timed");
    let best = picked.1.as_ref().expect("the pick ran");
    for (d, t) in &choice.timings_ms {
        assert!(d.trains_router(), "{} cannot train the router", d.name());
        if let Ok(ms) = t {
            assert!(best <= ms, "{} was faster than the pick", d.name());
        }
    }
    assert!(choice.to_string().starts_with("auto picks "));
    Ok(())
}
