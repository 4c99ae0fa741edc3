//! demo-m (Q8_0, 3.4 MB) on QEMU mps2-an505.
#![no_std]
#![no_main]

tinymla_fw::firmware!(
    model = "demo-m",
    layers = 5,
    bytes = include_bytes!("../../../../../models/demo-m.q8_0.gguf"),
    heap = 160 * 1024,
    ctx = 256,
    counter_hz = 20_000_000,
);
