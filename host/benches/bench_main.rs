//! Criterion benches, one module per measured path.
//!
//! `cargo bench -p tinymla-host` runs them all.

mod decode;

criterion::criterion_main!(decode::benches);
