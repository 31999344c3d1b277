use candle_core::{Device, Tensor};

fn run(dev: &Device) -> candle_core::Result<Tensor> {
    let src = Tensor::from_vec(
        vec![6u8, 6, 5, 17, 18, 14, 3, 19, 2, 14, 18, 7, 14, 15, 1],
        (3, 5),
        dev,
    )?;
    let indexes = Tensor::from_vec(vec![2u8, 7, 2, 7, 1, 7], (3, 2), dev)?
        .narrow(1, 0, 1)?
        .squeeze(1)?;
    src.index_select(&indexes, 0)
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
