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
    // Every strategy of the registry that trains the router was tried, and nothing else.
    let tried: Vec<&str> = choice.timings_ms.iter().map(|(d, _)| d.name()).collect();
    let trainers: Vec<&str> = moe_core::Dispatch::ALL
        .iter()
        .filter(|d| d.trains_router())
        .map(|d| d.name())
        .collect();
    assert_eq!(tried, trainers);
    // scatter-add cannot train on candle 0.11.1 (its backward fails: repro case
    // scatter_add_backward), so auto must have seen it fail; a pass means a fixed candle.
    let scatter = choice
        .timings_ms
        .iter()
        .find(|(d, _)| d.name() == "scatter-add")
        .expect("scatter-add was tried");
    assert!(
        scatter.1.is_err(),
        "scatter-add trained: candle's scatter_add backward fixed? update the docs and this test"
    );
    // The pick trains the router: its weights get a non-zero gradient.
    let loss = (block.forward(&x, choice.dispatch)? * &x)?.sum_all()?;
    let grads = loss.backward()?;
    let (router, _) = block
        .vars()
        .into_iter()
        .zip(block.var_names())
        .find(|(_, n)| n.contains("router"))
        .expect("a router weight");
    let g = grads
        .get(router.as_tensor())
        .expect("the router has a gradient");
    let g = g.abs()?.sum_all()?.to_scalar::<f32>()?;
    assert!(g > 0.0, "the pick gives the router a zero gradient");
    for (d, t) in &choice.timings_ms {
        assert!(d.trains_router(), "{} cannot train the router", d.name());
        if let Ok(ms) = t {
            assert!(best <= ms, "{} was faster than the pick", d.name());
        }
    }
    assert!(choice.to_string().starts_with("auto picks "));
    Ok(())
}
