use candle_core::{Device, Tensor};

fn run(dev: &Device) -> candle_core::Result<Tensor> {
    let dst = Tensor::from_vec(vec![7f32, -2.0], (2, 1), dev)?.narrow(0, 1, 1)?;
    let indexes = Tensor::from_vec(vec![0i64], (1,), dev)?;
    let src = Tensor::from_vec(vec![-2f32], (1, 1), dev)?;
    dst.index_add(&indexes, &src, 0)
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
