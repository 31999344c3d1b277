//! (work in progress) Every strategy against the plain-Rust reference in `reference/`.

mod reference;
