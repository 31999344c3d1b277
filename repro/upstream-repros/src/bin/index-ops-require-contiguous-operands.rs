use candle_core::{Device, Tensor};

fn run(dev: &Device) -> candle_core::Result<Tensor> {
    let w = Tensor::from_vec(vec![-2f32], (1, 1), dev)?.broadcast_as((2, 1))?;
    let indexes = Tensor::from_vec(vec![0u8], (1,), dev)?;
    candle_core::Module::forward(&candle_nn::Embedding::new(w.clone(), w.dim(1)?), &indexes)
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
