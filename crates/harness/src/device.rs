//! Which device a run targets: parsing `auto|cpu|cuda[:N]|metal[:N]`, opening it, describing it.
//!
//! Nothing here is backend-specific code: candle's `Device::new_cuda`/`Device::new_metal` exist in
//! every build and return an error when the feature is not compiled in, which we turn into one
//! line that says how to get the backend.

use candle_core::Device;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The environment variable that selects the device when no `--device` flag is given.
pub const DEVICE_ENV: &str = "CANDLE_REPRO_DEVICE";

/// The candle-core version this build resolved (read from Cargo.lock by build.rs).
pub const CANDLE_VERSION: &str = env!("HARNESS_CANDLE_VERSION");

/// `rustc --version` of the compiler that built this binary (build.rs); empty if unknown.
pub const RUSTC_VERSION: &str = env!("HARNESS_RUSTC_VERSION");

/// The release of the nvcc on the PATH when a CUDA build compiled (build.rs), e.g. `12.4`;
/// empty in a non-CUDA build or when nvcc was not found.
pub const NVCC_RELEASE: &str = env!("HARNESS_NVCC_RELEASE");

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    /// Metal if compiled in and present, then CUDA, then CPU.
    Auto,
    Cpu,
    Cuda(usize),
    Metal(usize),
}

impl FromStr for DeviceSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        let (kind, ordinal) = match s.split_once(':') {
            Some((kind, n)) => {
                let n = n.parse::<usize>().map_err(|_| {
                    format!("invalid device ordinal in `{s}`: expected e.g. `cuda:0`")
                })?;
                (kind.to_string(), Some(n))
            }
            None => (s.clone(), None),
        };
        match (kind.as_str(), ordinal) {
            ("auto", None) => Ok(Self::Auto),
            ("cpu", None) => Ok(Self::Cpu),
            ("cuda", n) => Ok(Self::Cuda(n.unwrap_or(0))),
            ("metal", n) => Ok(Self::Metal(n.unwrap_or(0))),
            _ => Err(format!(
                "unknown device `{s}`: expected auto, cpu, cuda[:N] or metal[:N]"
            )),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => write!(f, "auto"),
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
            Self::Metal(n) => write!(f, "metal:{n}"),
        }
    }
}

/// Why a requested device could not be opened. Its Display is the one line a user sees.
#[derive(Debug)]
pub struct DeviceError(pub String);

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeviceError {}

/// Opens the device named by `spec`.
/// The device a test run targets: `CANDLE_REPRO_DEVICE` (default `cpu`). A device that cannot be
/// opened fails loudly: a test run that silently fell back to the CPU would check the CPU under
/// a GPU's name.
pub fn test_target() -> Device {
    let spec: DeviceSpec = std::env::var(DEVICE_ENV)
        .unwrap_or_else(|_| "cpu".into())
        .parse()
        .unwrap_or_else(|e| panic!("{DEVICE_ENV}: {e}"));
    open(spec).unwrap_or_else(|e| panic!("{DEVICE_ENV}: {e}"))
}

pub fn open(spec: DeviceSpec) -> Result<Device, DeviceError> {
    match spec {
        DeviceSpec::Cpu => Ok(Device::Cpu),
        DeviceSpec::Cuda(n) => {
            if !candle_core::utils::cuda_is_available() {
                return Err(DeviceError(
                    "device cuda: this build has no CUDA backend; rebuild with `--features cuda` (needs the CUDA toolkit, see README)".into(),
                ));
            }
            Device::new_cuda(n).map_err(|e| {
                DeviceError(format!(
                    "device cuda:{n} is not usable: {}",
                    first_line(&e.to_string())
                ))
            })
        }
        DeviceSpec::Metal(n) => {
            if !candle_core::utils::metal_is_available() {
                return Err(DeviceError(
                    "device metal: this build has no Metal backend; Metal is compiled in automatically on macOS only".into(),
                ));
            }
            new_metal(n)
        }
        DeviceSpec::Auto => {
            if candle_core::utils::metal_is_available() {
                if let Ok(d) = new_metal(0) {
                    return Ok(d);
                }
            }
            if candle_core::utils::cuda_is_available() {
                if let Ok(d) = Device::new_cuda(0) {
                    return Ok(d);
                }
            }
            Ok(Device::Cpu)
        }
    }
}

/// `Device::new_metal(n)`, as an error rather than a panic when there is no such device:
/// candle-core 0.11.1 (`MetalDevice::new`) takes `Device::all().swap_remove(ordinal)`, which
/// panics on a Mac or VM that lists fewer devices (`metal_is_available()` only says the feature
/// is compiled in).
fn new_metal(n: usize) -> Result<Device, DeviceError> {
    let opened = std::panic::catch_unwind(|| Device::new_metal(n)).map_err(|_| {
        DeviceError(format!(
            "device metal:{n} is not usable: this machine lists no Metal device {n}"
        ))
    })?;
    opened.map_err(|e| {
        DeviceError(format!(
            "device metal:{n} is not usable: {}",
            first_line(&e.to_string())
        ))
    })
}

/// `cpu`, `cuda` or `metal`: the name used for snapshot suffixes and `reports/<backend>/`.
pub fn backend_name(device: &Device) -> &'static str {
    match device {
        Device::Cpu => "cpu",
        Device::Cuda(_) => "cuda",
        Device::Metal(_) => "metal",
    }
}

/// `cpu`, `cuda:0`, `metal:0`.
pub fn location(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

/// What a report says about the machine a verdict came from. Read back from reports too (the
/// fields after `driver` are missing from reports written before they were recorded).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceInfo {
    /// `cpu`, `cuda:0`, `metal:0`.
    pub location: String,
    pub backend: String,
    /// Hardware name, e.g. "NVIDIA H100 80GB HBM3" or the CPU model.
    pub name: String,
    /// GPU driver version where the platform tells it.
    pub driver: Option<String>,
    /// The OS the run saw ("Ubuntu 24.04.3 LTS", "macOS 14.5"): on a Mac, with the chip in
    /// `name`, what a Metal report needs.
    pub os: Option<String>,
    /// The compiler that built the binary (`rustc 1.95.0 (…)`).
    pub rustc: Option<String>,
    /// CUDA: the highest CUDA version the driver supports (nvidia-smi's `CUDA Version`).
    pub cuda_driver_api: Option<String>,
    /// CUDA: the nvcc release candle's kernels were compiled with, when the build found one.
    pub cuda_toolkit: Option<String>,
    /// CUDA: the device's compute capability, e.g. `9.0`.
    pub compute_capability: Option<String>,
}

/// The device line of every report and figure: `{}` gives `cuda:0 (NVIDIA H200, driver 580.…)`,
/// the alternate `{:#}` leaves the driver out (`cuda:0 (NVIDIA H200)`).
impl fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.driver {
            Some(d) if !f.alternate() => write!(f, "{} ({}, driver {d})", self.location, self.name),
            _ => write!(f, "{} ({})", self.location, self.name),
        }
    }
}

/// Where the verdict came from: candle version, OS, both devices.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Environment {
    pub candle_version: String,
    pub os: String,
    pub arch: String,
    pub reference: DeviceInfo,
    pub target: DeviceInfo,
}

impl Environment {
    pub fn collect(target: &Device) -> Self {
        Self {
            candle_version: CANDLE_VERSION.to_string(),
            os: os_description(),
            arch: std::env::consts::ARCH.to_string(),
            reference: describe(&Device::Cpu),
            target: describe(target),
        }
    }
}

pub fn describe(device: &Device) -> DeviceInfo {
    let backend = backend_name(device).to_string();
    let location = location(device);
    let base = DeviceInfo {
        location,
        backend,
        name: String::new(),
        driver: None,
        os: Some(os_description()),
        rustc: non_empty(RUSTC_VERSION),
        cuda_driver_api: None,
        cuda_toolkit: None,
        compute_capability: None,
    };
    match device.location() {
        candle_core::DeviceLocation::Cpu => DeviceInfo {
            name: cpu_model(),
            ..base
        },
        candle_core::DeviceLocation::Cuda { gpu_id } => {
            let (name, driver) =
                nvidia_smi(gpu_id).unwrap_or(("NVIDIA GPU (name unavailable)".into(), None));
            DeviceInfo {
                name,
                driver,
                cuda_driver_api: command_output("nvidia-smi", &[])
                    .and_then(|s| cuda_version_of_smi(&s)),
                cuda_toolkit: non_empty(NVCC_RELEASE),
                compute_capability: nvidia_smi_field(gpu_id, "compute_cap"),
                ..base
            }
        }
        candle_core::DeviceLocation::Metal { .. } => DeviceInfo {
            // On Apple silicon the GPU is part of the SoC the CPU brand names ("Apple M2 Pro").
            name: cpu_model(),
            ..base
        },
    }
}

/// `13.0` from the `CUDA Version: 13.0` in nvidia-smi's banner.
fn cuda_version_of_smi(text: &str) -> Option<String> {
    let rest = text.split("CUDA Version:").nth(1)?;
    let v = rest.split_whitespace().next()?.trim_end_matches('|');
    (!v.is_empty()).then(|| v.to_string())
}

/// One `--query-gpu` field on its own, so a driver that lacks it loses only that field.
fn nvidia_smi_field(gpu: usize, field: &str) -> Option<String> {
    let id = gpu.to_string();
    let query = format!("--query-gpu={field}");
    let s = command_output("nvidia-smi", &["-i", &id, &query, "--format=csv,noheader"])?;
    let v = s.lines().next()?.trim().to_string();
    (!v.is_empty() && !v.contains("N/A") && !v.contains("Field")).then_some(v)
}

fn command_output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(cmd).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn nvidia_smi(gpu: usize) -> Option<(String, Option<String>)> {
    let id = gpu.to_string();
    let line = command_output(
        "nvidia-smi",
        &[
            "-i",
            &id,
            "--query-gpu=name,driver_version",
            "--format=csv,noheader",
        ],
    )?;
    let (name, driver) = line.lines().next()?.split_once(',')?;
    Some((name.trim().to_string(), Some(driver.trim().to_string())))
}

fn cpu_model() -> String {
    if cfg!(target_os = "macos") {
        if let Some(s) = command_output("sysctl", &["-n", "machdep.cpu.brand_string"]) {
            return s;
        }
    }
    if let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") {
        if let Some(model) = info
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
        {
            return model.1.trim().to_string();
        }
    }
    std::env::consts::ARCH.to_string()
}

fn os_description() -> String {
    if cfg!(target_os = "macos") {
        if let Some(v) = command_output("sw_vers", &["-productVersion"]) {
            return format!("macOS {v}");
        }
    }
    if let Ok(release) = std::fs::read_to_string("/etc/os-release") {
        if let Some(name) = release.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=")) {
            return name.trim_matches('"').to_string();
        }
    }
    std::env::consts::OS.to_string()
}

/// candle errors may carry a captured backtrace after the first line; reports keep the message.
pub fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_spelling() {
        assert_eq!("auto".parse(), Ok(DeviceSpec::Auto));
        assert_eq!("CPU".parse(), Ok(DeviceSpec::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceSpec::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceSpec::Cuda(3)));
        assert_eq!("metal:1".parse(), Ok(DeviceSpec::Metal(1)));
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
        assert!("tpu".parse::<DeviceSpec>().is_err());
        assert!("cpu:1".parse::<DeviceSpec>().is_err());
    }

    #[test]
    fn cuda_version_is_read_from_the_smi_banner() {
        let banner =
            "| NVIDIA-SMI 580.159.04   Driver Version: 580.159.04   CUDA Version: 13.0     |";
        assert_eq!(cuda_version_of_smi(banner).as_deref(), Some("13.0"));
        assert_eq!(cuda_version_of_smi("no banner"), None);
    }

    #[test]
    fn a_cpu_description_names_the_toolchain_and_os() {
        let d = describe(&Device::Cpu);
        assert!(
            d.rustc.as_deref().is_some_and(|r| r.starts_with("rustc ")),
            "{d:?}"
        );
        assert!(d.os.as_deref().is_some_and(|o| !o.is_empty()), "{d:?}");
        assert_eq!(d.compute_capability, None);
    }

    #[test]
    fn missing_backend_is_one_line() {
        if !candle_core::utils::metal_is_available() {
            let e = open(DeviceSpec::Metal(0)).unwrap_err().to_string();
            assert!(!e.contains('\n') && e.contains("Metal"), "{e}");
        }
        if !candle_core::utils::cuda_is_available() {
            let e = open(DeviceSpec::Cuda(0)).unwrap_err().to_string();
            assert!(!e.contains('\n') && e.contains("--features cuda"), "{e}");
        }
    }
}
