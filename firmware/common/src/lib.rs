//! # tinymla-fw
//!
//! The no_std glue every tinymla board shares: the defmt transport (semihosting under QEMU,
//! RTT on real boards), an `embedded-alloc` heap that records its high-water mark, stack
//! painting, an instruction/cycle counter, the panic handler, a start-up self-test of the
//! selected dot-product kernels against the references, and [`run`] — the generation
//! that parses the model in place from flash, prefills a fixed prompt and generates tokens
//! greedily and with a seeded sampler, logging everything as `tinymla:` lines.
//!
//! A board binary is one macro call (see [`firmware!`]):
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! tinymla_fw::firmware!(model = "demo-s", layers = 3,
//!                       bytes = include_bytes!("../../../../../models/demo-s.q8_0.gguf"),
//!                       heap = 72 * 1024, ctx = 256, counter_hz = 25_000_000);
//! ```

#![no_std]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

extern crate alloc;

pub mod counter;
pub mod exit;
pub mod heap;
mod run;
mod selftest;
pub mod stack;

pub use run::{run, Board, PROMPT, PROMPT_IDS, SAMPLER};

#[cfg(target_arch = "arm")]
pub use cortex_m_rt::entry;
#[cfg(target_arch = "riscv32")]
pub use riscv_rt::entry;
pub use tinymla_core;

#[cfg(all(feature = "rtt", feature = "semihosting"))]
compile_error!("enable one defmt transport: `semihosting` (QEMU) or `rtt` (real boards); build QEMU and real boards in separate cargo invocations");
#[cfg(not(any(feature = "rtt", feature = "semihosting")))]
compile_error!("enable a defmt transport: feature `semihosting` (QEMU) or `rtt` (real boards)");

#[cfg(feature = "rtt")]
use defmt_rtt as _;
#[cfg(feature = "semihosting")]
use defmt_semihosting as _;

/// The allocator: an `embedded-alloc` linked-list heap that also records its peak use.
#[global_allocator]
pub static HEAP: heap::PeakHeap = heap::PeakHeap::empty();

/// Bytes aligned to 32 (GGUF's default data alignment), so tensor data offsets in the model
/// file keep their alignment in flash.
#[repr(C, align(32))]
pub struct Aligned<T: ?Sized>(pub T);

/// Defines a board binary's model blob (in the `.model` linker section, which each board's
/// memory.x places in flash, read in place, never copied), its heap memory, and its entry
/// point, which calls [`run`]. `layers` is the model's layer count: the model struct has that
/// many layer slots (loading fails with a clear error if the file has more).
#[macro_export]
macro_rules! firmware {
    (model = $name:literal, layers = $layers:expr, bytes = $bytes:expr, heap = $heap:expr,
     ctx = $ctx:expr, counter_hz = $hz:expr $(,)?) => {
        const MODEL_LEN: usize = $bytes.len();
        #[unsafe(link_section = ".model")]
        #[used]
        static MODEL: $crate::Aligned<[u8; MODEL_LEN]> = $crate::Aligned(*$bytes);

        #[$crate::entry]
        fn main() -> ! {
            const HEAP_BYTES: usize = $heap;
            static mut HEAP_MEM: [core::mem::MaybeUninit<u8>; HEAP_BYTES] =
                [core::mem::MaybeUninit::uninit(); HEAP_BYTES];
            let board = $crate::Board {
                name: env!("CARGO_BIN_NAME"),
                model_name: $name,
                ctx: $ctx,
                counter_hz: $hz,
            };
            // SAFETY: `main` runs once and nothing else names HEAP_MEM, so this is the only
            // reference to it; the heap takes it over for the rest of the program.
            let heap_mem: &'static mut [core::mem::MaybeUninit<u8>] =
                unsafe { &mut *core::ptr::addr_of_mut!(HEAP_MEM) };
            // `black_box`: the blob is only ever borrowed, never copied or volatile-read
            // (either would make rustc materialise megabytes of constants).
            $crate::run::<{ $layers }>(&board, core::hint::black_box(&MODEL.0[..]), heap_mem)
        }
    };
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    defmt::error!("tinymla: panic: {}", defmt::Display2Format(info));
    exit::exit(101)
}
