//! What a divergence becomes: a standalone `main.rs` (candle-core and candle-nn only) that
//! rebuilds the shrunk cell, runs it on the CPU and on the device and prints both, and the issue
//! text around it.

use super::cell::{self, Hazard};
use super::exec::Obs;
use super::ops::Op;
use super::report::Divergence;
use super::Shrunk;
use candle_core::DType;
use harness::host::HostTensor;

/// A Rust literal for one value of `dtype`.
fn literal(dtype: DType, v: f64) -> String {
    match dtype {
        DType::U8 => format!("{}u8", v as u8),
        DType::U32 => format!("{}u32", v as u32),
        DType::I64 => format!("{}i64", v as i64),
        #[cfg(feature = "i16-i32")]
        DType::I16 => format!("{}i16", v as i16),
        #[cfg(feature = "i16-i32")]
        DType::I32 => format!("{}i32", v as i32),
        _ if v.is_nan() => "f64::NAN".into(),
        _ if v == f64::INFINITY => "f64::INFINITY".into(),
        _ if v == f64::NEG_INFINITY => "f64::NEG_INFINITY".into(),
        _ => format!("{v:?}f64"),
    }
}

fn shape_code(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("({},)", dims.join(", "))
}

/// Source that builds `h` (contiguous, on the CPU, in its dtype) and moves it to `dev`.
fn tensor_code(h: &HostTensor) -> String {
    if h.dtype.is_float() && cell::is_long_row(&h.values, 64) {
        return format!(
            "Tensor::from_vec((0..{n}).map(|i| (i % 16) as f64 / 16.0).collect::<Vec<f64>>(), {}, &Device::Cpu)?.to_dtype(DType::{:?})?.to_device(dev)?",
            shape_code(&h.shape),
            h.dtype,
            n = h.values.len()
        );
    }
    let vals: Vec<String> = h.values.iter().map(|&v| literal(h.dtype, v)).collect();
    let cast = if h.dtype.is_float() {
        format!(".to_dtype(DType::{:?})?", h.dtype)
    } else {
        String::new()
    };
    // An empty slice leaves its element type to inference, which `Tensor::new` cannot give.
    let data = if vals.is_empty() {
        let ty = if h.dtype.is_float() {
            "f64"
        } else {
            h.dtype.as_str()
        };
        format!("&[] as &[{ty}]")
    } else {
        format!("&[{}]", vals.join(", "))
    };
    format!(
        "Tensor::new({data}, &Device::Cpu)?.reshape({})?{cast}.to_device(dev)?",
        shape_code(&h.shape)
    )
}

fn obs_line(o: Option<&Obs>) -> String {
    o.map(|o| o.short()).unwrap_or_else(|| "-".into())
}

/// The body of a generated `fn run(dev: &Device) -> candle_core::Result<(String, Vec<f64>)>`:
/// it rebuilds the shrunk cell's inputs on `dev` (contiguous base on the CPU, moved, then the
/// view), calls the op and returns `flat(..)` of the output, or of the checked input's gradient
/// for a backward pass (`("no gradient", [])` when none is recorded).
pub struct RunBody {
    pub code: String,
    /// Whether the code needs `candle_core::Var` (a backward pass).
    pub uses_var: bool,
}

pub fn run_body(op: &Op, s: &Shrunk) -> RunBody {
    let cell = &s.cell;
    let inputs = super::exec::prepare(op, cell);
    let backward_role = s.finding.pass.strip_prefix("backward ").map(str::to_string);
    let mut body = String::new();
    let mut names = Vec::new();
    for (input, layout) in inputs.iter().zip(&cell.layouts) {
        let (base, view) = cell::base_and_view(&input.host, *layout);
        let name = input.role.to_string();
        let view = cell::view_code(&view);
        if backward_role.as_deref() == Some(input.role) {
            body.push_str(&format!(
                "    // {} ({}): a variable, seen by the op through `{}`.\n    let {name}_var = Var::from_tensor(&{})?;\n    let {name} = {name}_var.as_tensor(){};\n",
                input.role,
                layout.as_str(),
                if view.is_empty() { "itself" } else { view.trim_end_matches('?') },
                tensor_code(&base),
                if view.is_empty() { ".clone()".to_string() } else { view.clone() },
            ));
        } else {
            body.push_str(&format!(
                "    // {} ({})\n    let {name} = {}{view};\n",
                input.role,
                layout.as_str(),
                tensor_code(&base)
            ));
        }
        names.push(name);
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let call = (op.code)(cell, &refs);
    let result = match &backward_role {
        None => format!("    let out = {call};\n    flat(&out)\n"),
        Some(role) => {
            let w: Vec<String> = s
                .evidence
                .loss_weights
                .clone()
                .unwrap_or_default()
                .iter()
                .map(|v| format!("{v:?}"))
                .collect();
            format!(
                "    let out = {call};\n    // loss = sum(out * w); its gradient with respect to `{role}` is printed.\n    let w = Tensor::new(&[{}f64], &Device::Cpu)?.reshape(out.shape())?.to_dtype(out.dtype())?.to_device(dev)?;\n    let grads = (out * w)?.sum_all()?.backward()?;\n    match grads.get({role}_var.as_tensor()) {{\n        Some(g) => flat(g),\n        None => Ok((\"no gradient\".into(), vec![])),\n    }}\n",
                w.join(", ")
            )
        }
    };
    RunBody {
        code: format!("{body}{result}"),
        uses_var: backward_role.is_some(),
    }
}

/// The standalone program for a shrunk divergence.
pub fn repro_source(op: &Op, s: &Shrunk, title: &str, command: &str) -> String {
    let cell = &s.cell;
    let RunBody { code, uses_var } = run_body(op, s);
    let pass = &s.finding.pass;
    let reference = s.evidence.reference.get(pass).cloned().unwrap_or_default();
    let mut observed = String::new();
    if let Some(per_backend) = s.evidence.observed.get(pass) {
        for (b, o) in per_backend {
            observed.push_str(&format!("//   {b}: {}\n", obs_line(Some(o))));
        }
    }
    let uses_var = if uses_var { ", Var" } else { "" };
    format!(
        r#"//! {title}
//!
//! Generated by `{command}` from sweep cell seed {seed}; regenerate rather than edit.
//! Depends on candle-core and candle-nn only. Run: `cargo run -- [cpu|cuda|metal]`; it prints
//! the result on the CPU and on the chosen device.
//!
//! Expected (plain-Rust oracle, {pass}): {reference}
//! Observed when generated:
{observed_doc}
use candle_core::{{DType, Device, Tensor{uses_var}}};

fn device() -> candle_core::Result<Device> {{
    match std::env::args().nth(1).as_deref() {{
        Some("cuda") => Device::new_cuda(0),
        Some("metal") => Device::new_metal(0),
        _ => Ok(Device::Cpu),
    }}
}}

/// dtype, shape and values (read on the CPU as f64).
fn flat(t: &Tensor) -> candle_core::Result<(String, Vec<f64>)> {{
    let desc = format!("{{:?}} {{:?}}", t.dtype(), t.dims());
    let v = t.to_device(&Device::Cpu)?.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    Ok((desc, v))
}}

fn run(dev: &Device) -> candle_core::Result<(String, Vec<f64>)> {{
{code}}}

fn main() -> candle_core::Result<()> {{
    let dev = device()?;
    for d in [Device::Cpu, dev] {{
        // AssertUnwindSafe: on macOS `Device` holds a `MetalDevice`, which is not `RefUnwindSafe`.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&d))) {{
            Ok(Ok((desc, v))) => println!("{{:?}}: {{desc}} {{v:?}}", d.location()),
            // The first line: candle appends a backtrace when RUST_BACKTRACE is set.
            Ok(Err(e)) => println!("{{:?}}: error: {{}}", d.location(), e.to_string().lines().next().unwrap_or("")),
            Err(_) => println!("{{:?}}: panicked", d.location()),
        }}
    }}
    Ok(())
}}
"#,
        seed = cell.seed,
        observed_doc = observed.replace("//   ", "//!   "),
    )
}

/// The sentence a report leads with.
pub fn title(op: &Op, s: &Shrunk, backends: &[String]) -> String {
    let what = match s.finding.category {
        super::exec::Category::WrongResult => "returns a wrong result",
        super::exec::Category::Unimplemented => "fails on a valid call",
        super::exec::Category::ErrorMismatch => {
            "answers an invalid call differently from the contract or the CPU"
        }
        super::exec::Category::Crash => "crashes",
        super::exec::Category::NonFinite => "propagates them unlike PyTorch",
    };
    let pass = if s.finding.pass == "forward" {
        String::new()
    } else {
        format!(
            " ({} gradient)",
            s.finding.pass.trim_start_matches("backward ")
        )
    };
    let layouts: Vec<String> = super::exec::generate(op, &s.cell)
        .iter()
        .zip(&s.cell.layouts)
        .filter(|(_, l)| **l != cell::Layout::Contiguous)
        .map(|(i, l)| format!("{} {}", l.as_str(), i.role))
        .collect();
    let article = |w: &str| {
        if w.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        }
    };
    let layouts: Vec<String> = layouts
        .iter()
        .map(|l| format!("{} {l}", article(l)))
        .collect();
    let with = match (layouts.is_empty(), s.cell.hazard) {
        (_, Some(Hazard::PastEnd)) => " with an index one past the end".to_string(),
        (_, Some(Hazard::DtypeMax)) => " with an index equal to its dtype's maximum".to_string(),
        (_, Some(Hazard::Negative)) => " with a negative index".to_string(),
        (false, None) => format!(" with {}", layouts.join(" and ")),
        (true, None) => String::new(),
    };
    let longest = s.cell.knobs.iter().copied().max().unwrap_or(1);
    let with = match s.cell.values.describe(s.cell.dtype(), longest) {
        Some(v) if with.is_empty() => format!(" {v}"),
        Some(v) => format!("{with}, {v}"),
        None => with,
    };
    format!(
        "`{}`{pass}{with} {what} on {}",
        op.call,
        backends.join(" and ")
    )
}

/// Markdown for an upstream issue.
pub fn issue_markdown(
    op: &Op,
    d: &Divergence,
    s: &Shrunk,
    device: &str,
    command: &str,
    source: &str,
) -> String {
    let dtypes: Vec<String> = d.dtypes.iter().cloned().collect();
    let (cells, upstream) = (d.cells, d.upstream.as_deref());
    let backends: Vec<String> = d.backends.iter().cloned().collect();
    let mut md = format!("# {}\n\n", title(op, s, &backends));
    if let Some(u) = upstream {
        md.push_str(&format!("Upstream: {u}\n\n"));
    }
    md.push_str(&format!(
        "Found by an op-consistency sweep that runs each op on the device, on the CPU and through a plain-Rust reference implementation, then shrinks each divergence to its smallest input.\n\n\
         - candle-core {}\n- device: {device}\n- command: `{command}`\n- category: {} ({} pass)\n- dtypes where it showed: {}\n- cells that showed it: {cells}\n\n",
        harness::device::CANDLE_VERSION,
        s.finding.category.as_str(),
        s.finding.pass,
        dtypes.join(", "),
    ));
    md.push_str(
        "## Smallest input\n\n| input | dtype | shape | layout | values |\n|---|---|---|---|---|\n",
    );
    for i in &s.evidence.inputs {
        md.push_str(&format!(
            "| {} | {} | {:?} | {} | {} |\n",
            i.role,
            i.dtype,
            i.shape,
            i.layout.as_str(),
            super::exec::values_text(&i.values, i.shape.iter().product())
        ));
    }
    md.push_str(&format!(
        "\n## Expected and observed ({})\n\n- reference (plain Rust, f64, rounded once): {}\n",
        s.finding.pass,
        s.evidence
            .reference
            .get(&s.finding.pass)
            .cloned()
            .unwrap_or_default()
    ));
    if let Some(per) = s.evidence.observed.get(&s.finding.pass) {
        for (b, o) in per {
            md.push_str(&format!("- {b}: {}\n", o.short()));
        }
    }
    if !s.reproduced_on_rerun {
        md.push_str("\n**Nondeterministic:** running this smallest input again did not give the same divergence; the observations above come from that re-run. The lines below come from the cell that first diverged, whose input values may differ from the ones shown.\n");
    }
    md.push_str(&format!(
        "\nWhat differs ({}, the backend this input was shrunk on; the others are listed above):\n\n",
        s.finding.backends.join(", ")
    ));
    for (b, d) in &s.finding.detail {
        md.push_str(&format!("- {b}: {d}\n"));
    }
    md.push_str(&format!(
        "\n## Standalone repro\n\n`cargo run -- cuda` (or `metal`, `cpu`):\n\n```rust\n{source}```\n"
    ));
    md
}

/// A Rust literal for one value of `dtype` in a `vec![…]` of that dtype's Rust type (f16 and
/// bf16 are written as f32 and cast on the CPU): the first carries the type suffix.
fn typed_literal(dtype: DType, v: f64, first: bool) -> String {
    let rust = rust_type(dtype);
    let float = matches!(rust, "f32" | "f64");
    if float && v.is_nan() {
        return format!("{rust}::NAN");
    }
    if float && v.is_infinite() {
        let sign = if v < 0.0 { "NEG_" } else { "" };
        return format!("{rust}::{sign}INFINITY");
    }
    let text = match rust {
        "f32" => format!("{:?}", v as f32),
        "f64" => format!("{v:?}"),
        // Integer dtypes hold integers.
        _ => format!("{}", v as i64),
    };
    if first {
        let bare = text.strip_suffix(".0").unwrap_or(&text);
        format!("{bare}{rust}")
    } else {
        text
    }
}

/// The Rust element type a tensor of `dtype` is built from.
fn rust_type(dtype: DType) -> &'static str {
    match dtype {
        DType::U8 => "u8",
        DType::U32 => "u32",
        DType::I64 => "i64",
        #[cfg(feature = "i16-i32")]
        DType::I16 => "i16",
        #[cfg(feature = "i16-i32")]
        DType::I32 => "i32",
        DType::F64 => "f64",
        _ => "f32",
    }
}

/// `Tensor::from_vec(…)` building `h` on `dev`; half dtypes are cast on the CPU first (so the
/// program needs no device cast kernel besides the one under test).
fn compact_tensor_code(h: &HostTensor) -> String {
    let shape = shape_code(&h.shape);
    let rust = rust_type(h.dtype);
    let data = if h.dtype.is_float() && cell::is_long_row(&h.values, 64) {
        format!(
            "(0..{}).map(|i| (i % 16) as {rust} / 16.0).collect::<Vec<{rust}>>()",
            h.values.len()
        )
    } else if let Some(data) = cycle_code(h) {
        data
    } else if h.values.is_empty() {
        // An empty `vec![]` leaves its element type to inference, which `from_vec` cannot give.
        format!("Vec::<{rust}>::new()")
    } else {
        let vals: Vec<String> = h
            .values
            .iter()
            .enumerate()
            .map(|(i, &v)| typed_literal(h.dtype, v, i == 0))
            .collect();
        format!("vec![{}]", vals.join(", "))
    };
    if matches!(h.dtype, DType::F16 | DType::BF16) {
        format!(
            "Tensor::from_vec({data}, {shape}, &Device::Cpu)?.to_dtype(DType::{:?})?.to_device(dev)?",
            h.dtype
        )
    } else {
        format!("Tensor::from_vec({data}, {shape}, dev)?")
    }
}

/// A long input (32 values or more, two lines or more listed) that is a run of one value (none
/// or more) then a cycle of at most 10 values to the end, as a formula instead of the numbers:
/// `[a, b, c].repeat(r)[..m].to_vec()`, after `vec![v; k]` when the run comes first.
fn cycle_code(h: &HostTensor) -> Option<String> {
    let v = &h.values;
    let n = v.len();
    if n < 32 {
        return None;
    }
    let same = |a: f64, b: f64| a.to_bits() == b.to_bits();
    let run = v.iter().take_while(|&&x| same(x, v[0])).count();
    let lit = |x: f64, first: bool| typed_literal(h.dtype, x, first);
    [0, run].into_iter().find_map(|k| {
        let tail = &v[k..];
        let m = tail.len();
        let p = (1..=10)
            .find(|&p| m >= 2 * p && tail.iter().enumerate().all(|(i, &x)| same(x, tail[i % p])))?;
        let cycle: Vec<String> = tail[..p]
            .iter()
            .enumerate()
            .map(|(i, &x)| lit(x, i == 0))
            .collect();
        let cycle = cycle.join(", ");
        let repeated = match (p, m % p) {
            (1, _) => format!("vec![{cycle}; {m}]"),
            (_, 0) => format!("[{cycle}].repeat({})", m / p),
            _ => format!("[{cycle}].repeat({})[..{m}].to_vec()", m.div_ceil(p)),
        };
        Some(match k {
            0 => repeated,
            _ => format!("[vec![{}; {k}], {repeated}].concat()", lit(v[0], true)),
        })
    })
}

/// A short program a maintainer pastes: `run(dev)` builds the inputs of the shrunk cell on
/// `dev` with their layouts and returns the op's output (or, for a backward pass, the gradient
/// of `sum(out * w)` with respect to the checked input); `main` prints it for the CPU, then for
/// each device (the text beside it gives the expected answer).
pub struct Program {
    pub source: String,
    pub uses_nn: bool,
    pub uses_cuda: bool,
}

pub fn program(
    op: &Op,
    s: &Shrunk,
    devices: &[&str],
    optional: &[&str],
    out_dtype: &str,
    later_call: bool,
) -> Program {
    let cell = &s.cell;
    let inputs = super::exec::prepare(op, cell);
    let backward_role = s.finding.pass.strip_prefix("backward ");
    let mut body = String::new();
    let mut names = Vec::new();
    for (input, layout) in inputs.iter().zip(&cell.layouts) {
        let (base, view) = cell::base_and_view(&input.host, *layout);
        let name = input.role.to_string();
        let view = cell::view_code(&view);
        let build = compact_tensor_code(&base);
        if backward_role == Some(input.role) {
            body.push_str(&format!(
                "    let {name}_var = Var::from_tensor(&{build})?;\n"
            ));
            let view = if view.is_empty() {
                ".as_tensor().clone()".to_string()
            } else {
                view
            };
            body.push_str(&format!("    let {name} = {name}_var{view};\n"));
        } else {
            body.push_str(&format!("    let {name} = {build}{view};\n"));
        }
        names.push(name);
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let call = (op.code)(cell, &refs);
    match backward_role {
        None => body.push_str(&format!("    {}\n", result_expr(&call))),
        Some(role) => {
            let w: Vec<String> = s
                .evidence
                .loss_weights
                .clone()
                .unwrap_or_default()
                .iter()
                .enumerate()
                .map(|(i, v)| typed_literal(DType::F64, *v, i == 0))
                .collect();
            body.push_str(&format!(
                "    let out = {call};\n    let w = Tensor::from_vec(vec![{}], out.shape(), &Device::Cpu)?;\n    let w = w.to_dtype(out.dtype())?.to_device(dev)?;\n    let grads = (out * w)?.sum_all()?.backward()?;\n    let no_grad = || candle_core::Error::Msg(\"no gradient for {role}\".into());\n    grads.get(&{role}_var).cloned().ok_or_else(no_grad)\n",
                w.join(", ")
            ));
        }
    }
    // A device the bug does not show on is only compared with: the program runs there when it
    // can, and needs no GPU feature to build.
    let uses_cuda = devices.contains(&"cuda") && !optional.contains(&"cuda");
    let mut shows = String::from("    show(&Device::Cpu);\n");
    for d in devices {
        let open = match *d {
            "cuda" => "Device::new_cuda(0)",
            "metal" => "Device::new_metal(0)",
            _ => continue,
        };
        match (optional.contains(d), later_call) {
            (true, false) => shows.push_str(&format!(
                "    if let Ok(dev) = {open} {{\n        show(&dev);\n    }}\n"
            )),
            (true, true) => shows.push_str(&format!(
                "    if let Ok(dev) = {open} {{\n        show(&dev);\n        later_call(&dev);\n    }}\n"
            )),
            (false, false) => shows.push_str(&format!("    show(&{open}?);\n")),
            (false, true) => shows.push_str(&format!(
                "    let dev = {open}?;\n    show(&dev);\n    later_call(&dev);\n"
            )),
        }
    }
    let later_fn = if later_call {
        "\n// A valid call on the same device, after the one above.\nfn later_call(dev: &Device) {\n    match Tensor::new(&[1f32, 2.], dev).and_then(|t| t.sum_all()?.to_device(&Device::Cpu)) {\n        Ok(t) => println!(\"{:?}: a later valid call: {t}\", dev.location()),\n        Err(e) => println!(\"{:?}: a later valid call: error: {e}\", dev.location()),\n    }\n}\n"
    } else {
        ""
    };
    let var = if backward_role.is_some() { ", Var" } else { "" };
    // `GgmlDType::` (quantized ops) names another type: only a bare `DType::` needs the import.
    let dtype = if body.replace("GgmlDType::", "").contains("DType::") {
        "DType, "
    } else {
        ""
    };
    // candle prints 4 decimals by default, which hides a difference past them: print the
    // digits the dtype holds (integer-valued tensors print as integers whatever this is).
    let precision = match out_dtype {
        "f64" => "    candle_core::display::set_precision(17);\n",
        "f32" => "    candle_core::display::set_precision(9);\n",
        _ => "",
    };
    let source = format!(
        "use candle_core::{{{dtype}Device, Tensor{var}}};\n\nfn run(dev: &Device) -> candle_core::Result<Tensor> {{\n{body}}}\n\nfn show(dev: &Device) {{\n    match run(dev).and_then(|t| t.to_device(&Device::Cpu)) {{\n        Ok(t) => println!(\"{{:?}}: {{t}}\", dev.location()),\n        Err(e) => println!(\"{{:?}}: error: {{e}}\", dev.location()),\n    }}\n}}\n{later_fn}\nfn main() -> candle_core::Result<()> {{\n{precision}{shows}    Ok(())\n}}\n",
    );
    Program {
        uses_nn: source.contains("candle_nn::"),
        uses_cuda,
        source,
    }
}

/// The last expression of a generated `fn run(…) -> candle_core::Result<Tensor>`: the call's own
/// `?` goes (its `Result` is what `run` returns); a call that goes on after its `?`
/// (`x.sort_last_dim(asc)?.0`) is a tensor, wrapped in `Ok`.
fn result_expr(call: &str) -> String {
    match call.strip_suffix('?') {
        Some(result) => result.to_string(),
        None => format!("Ok({call})"),
    }
}

#[cfg(test)]
mod result_expr_tests {
    #[test]
    fn a_call_that_goes_on_after_its_question_mark_is_wrapped() {
        assert_eq!(super::result_expr("x.exp()?"), "x.exp()");
        assert_eq!(
            super::result_expr("x.sort_last_dim(true)?.0"),
            "Ok(x.sort_last_dim(true)?.0)"
        );
    }
}
