//! demo-m (Q8_0) on the rp2350-arm board: see ../../memory.x and firmware/README.md.
#![no_std]
#![no_main]

tinymla_fw::firmware!(
    model = "demo-m",
    layers = 5,
    bytes = include_bytes!("../../../../../models/demo-m.q8_0.gguf"),
    heap = 160 * 1024,
    ctx = 256,
    // 0: the counter reports raw SysTick ticks (= core cycles) / minstret, no -icount scaling.
    counter_hz = 0,
);
