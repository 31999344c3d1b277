//! `cargo run -p repro --release --bin index_add_rows`: see repro/src/perf/index_add_rows.rs.
repro::perf_main!(index_add_rows);
