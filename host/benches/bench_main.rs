//! Criterion benches, one module per measured path.
//!
//! `cargo bench -p tinymla-host` runs them all.

mod attention;
mod blocks;
mod context;
mod decode;
mod kernels;
mod roofline;

criterion::criterion_main!(
    decode::benches,
    context::benches,
    kernels::benches,
    blocks::benches,
    attention::benches,
    roofline::benches
);
