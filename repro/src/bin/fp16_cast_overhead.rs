//! `cargo run -p repro --release --bin fp16_cast_overhead`: see repro/src/perf/fp16_cast_overhead.rs.
repro::perf_main!(fp16_cast_overhead);
