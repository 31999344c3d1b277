use candle_core::{Device, Tensor};

fn run(dev: &Device) -> candle_core::Result<Tensor> {
    let dst = Tensor::from_vec(vec![-2f32], (1, 1), dev)?.broadcast_as((2, 1))?;
    let indexes = Tensor::from_vec(vec![0u32], (1, 1), dev)?;
    let src = Tensor::from_vec(vec![-2f32], (1, 1), dev)?;
    Ok({
        dst.scatter_add_set(&indexes, &src, 0)?;
        dst.clone()
    })
}

fn show(dev: &Device) {
    match run(dev).and_then(|t| t.to_device(&Device::Cpu)) {
        Ok(t) => println!("{:?}: {t}", dev.location()),
        Err(e) => println!("{:?}: error: {e}", dev.location()),
    }
}

fn main() -> candle_core::Result<()> {
    show(&Device::Cpu);
    show(&Device::new_cuda(0)?);
    Ok(())
}
