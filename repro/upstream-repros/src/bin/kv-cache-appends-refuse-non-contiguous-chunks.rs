use candle_core::{Device, Tensor};

fn run(dev: &Device) -> candle_core::Result<Tensor> {
    let k1 = Tensor::from_vec(vec![-2f32, -1.0], (1, 1, 1, 2), dev)?;
    let v1 = Tensor::from_vec(vec![-2f32, -1.0], (1, 1, 1, 2), dev)?;
    let k2 = Tensor::from_vec(vec![-2f32, 0.0, -1.0, 1.0], (1, 1, 2, 2), dev)?.t()?;
    let v2 = Tensor::from_vec(vec![-2f32, -1.0, 0.0, 1.0], (1, 1, 2, 2), dev)?;
    Ok({
        let mut cache = candle_nn::kv_cache::Cache::new(2, k1.dim(2)?);
        cache.append(&k1)?;
        cache.append(&v1)?;
        cache.append(&k2)?;
        cache.append(&v2)?;
        cache.current_data()?.unwrap()
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
