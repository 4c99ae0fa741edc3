//! demo-s (Q8_0, 248 KB) on QEMU mps3-an547.
#![no_std]
#![no_main]

tinymla_fw::firmware!(
    model = "demo-s",
    layers = 3,
    bytes = include_bytes!("../../../../../models/demo-s.q8_0.gguf"),
    heap = 72 * 1024,
    ctx = 256,
    counter_hz = 32_000_000,
);
