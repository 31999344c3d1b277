//! Nothing here: the crate exists for the generated programs in `src/bin/` (see Cargo.toml).
