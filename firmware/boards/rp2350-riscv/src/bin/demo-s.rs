//! demo-s (Q8_0) on the rp2350-riscv board: see ../../memory.x and firmware/README.md.
#![no_std]
#![no_main]

tinymla_fw::firmware!(
    model = "demo-s",
    layers = 3,
    bytes = include_bytes!("../../../../../models/demo-s.q8_0.gguf"),
    heap = 72 * 1024,
    ctx = 256,
    // 0: the counter reports raw SysTick ticks (= core cycles) / minstret, no -icount scaling.
    counter_hz = 0,
);
