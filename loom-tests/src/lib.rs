//! loom models of `srb-core`. The models are in `tests/`; build with
//! `RUSTFLAGS="--cfg loom"` (see the README).
