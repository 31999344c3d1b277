//! `cargo run -p repro --release --bin cuda_pool_release`: see repro/src/perf/cuda_pool_release.rs.
repro::perf_main!(cuda_pool_release);
