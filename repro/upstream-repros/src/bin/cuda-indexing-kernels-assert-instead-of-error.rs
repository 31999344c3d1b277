use candle_core::{Device, Tensor};

fn run(dev: &Device) -> candle_core::Result<Tensor> {
    let w = Tensor::from_vec(vec![-2f32, -1.0, 0.0, 1.0], (2, 2), dev)?;
    let indexes = Tensor::from_vec(vec![-1i64, 1], (2,), dev)?;
    candle_core::Module::forward(&candle_nn::Embedding::new(w.clone(), w.dim(1)?), &indexes)
}

fn show(dev: &Device) {
    match run(dev).and_then(|t| t.to_device(&Device::Cpu)) {
        Ok(t) => println!("{:?}: {t}", dev.location()),
        Err(e) => println!("{:?}: error: {e}", dev.location()),
    }
}

// A valid call on the same device, after the one above.
fn later_call(dev: &Device) {
    match Tensor::new(&[1f32, 2.], dev).and_then(|t| t.sum_all()?.to_device(&Device::Cpu)) {
        Ok(t) => println!("{:?}: a later valid call: {t}", dev.location()),
        Err(e) => println!("{:?}: a later valid call: error: {e}", dev.location()),
    }
}

fn main() -> candle_core::Result<()> {
    show(&Device::Cpu);
    let dev = Device::new_cuda(0)?;
    show(&dev);
    later_call(&dev);
    Ok(())
}
