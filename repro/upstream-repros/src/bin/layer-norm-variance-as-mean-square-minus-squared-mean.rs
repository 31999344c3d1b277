use candle_core::{Device, Tensor};

fn run(dev: &Device) -> candle_core::Result<Tensor> {
    let x = Tensor::from_vec(vec![9999f32, 9999.5], (1, 2), dev)?;
    let alpha = Tensor::from_vec(vec![-2f32, -1.0], (2,), dev)?;
    let beta = Tensor::from_vec(vec![-2f32, -1.0], (2,), dev)?;
    candle_nn::ops::layer_norm(&x, &alpha, &beta, 1e-5)
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
    Ok(())
}
