use candle_core::{Device, Tensor};

fn run(dev: &Device) -> candle_core::Result<Tensor> {
    let k1 = Tensor::from_vec(vec![-2f32, -1.0], (1, 1, 2, 1), dev)?;
    let v1 = Tensor::from_vec(vec![-2f32, -1.0], (1, 1, 2, 1), dev)?;
    let k2 = Tensor::from_vec(vec![-2f32], (1, 1, 1, 1), dev)?;
    let v2 = Tensor::from_vec(vec![-2f32], (1, 1, 1, 1), dev)?;
    Ok({
        let (b, h, _, d) = k1.dims4()?;
        let mut builder =
            candle_nn::kv_cache::ScatteredCacheBuilder::new(b, 2, k1.dtype(), k1.device())?;
        let mut cache: candle_nn::kv_cache::ScatteredKvCache = builder.make_cache(h, d)?;
        let iam = builder.indices_and_mask(k1.dim(2)?, &vec![true; b])?;
        cache.append(&k1, &v1, &iam)?;
        let iam = builder.indices_and_mask(k2.dim(2)?, &vec![true; b])?;
        let (k, v) = cache.append(&k2, &v2, &iam)?;
        Tensor::cat(&[&k, &v], 2)?
    })
}

fn show(dev: &Device) {
    match run(dev).and_then(|t| t.to_device(&Device::Cpu)) {
        Ok(t) => println!("{:?}: {t}", dev.location()),
        Err(e) => println!("{:?}: error: {e}", dev.location()),
    }
}

fn main() -> candle_core::Result<()> {
    candle_core::display::set_precision(9);
    show(&Device::Cpu);
    show(&Device::new_cuda(0)?);
    Ok(())
}
