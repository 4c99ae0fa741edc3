//! A free-running counter for instructions per token.
//!
//! - RISC-V: `minstret`, the retired-instruction counter (exact under QEMU's `-icount`).
//! - Arm: SysTick at the core clock (QEMU does not model the DWT cycle counter). Under
//!   `-icount shift=0` QEMU retires one instruction per virtual nanosecond, so instructions =
//!   ticks × 1e9 / the board's SysTick clock; on hardware the ticks are cycles.
//!
//! [`mark`] is an empty, never-inlined function called once per token, for the instruction
//! counting QEMU plugin (`firmware/tools/insncount.c`), which gives exact counts on Arm.

/// Starts the counter.
pub fn init() {
    #[cfg(target_arch = "arm")]
    {
        use cortex_m::peripheral::{syst::SystClkSource, SYST};
        // SAFETY: called once at start-up, before anything else touches SysTick.
        let mut p = unsafe { cortex_m::Peripherals::steal() };
        p.SYST.set_clock_source(SystClkSource::Core);
        p.SYST.set_reload(0x00ff_ffff);
        p.SYST.clear_current();
        p.SYST.enable_counter();
        // Under -icount the current value reads 0 until the first tick.
        while SYST::get_current() == 0 {}
    }
}

/// The counter now (Arm: ticks, counting up, 24 bits; RISC-V: instructions, 64 bits).
#[inline(always)]
pub fn read() -> u64 {
    #[cfg(target_arch = "arm")]
    {
        u64::from(0x00ff_ffff - cortex_m::peripheral::SYST::get_current())
    }
    #[cfg(target_arch = "riscv32")]
    {
        riscv::register::minstret::read64()
    }
}

/// Ticks or instructions from `start` to `end` (Arm's 24-bit counter wraps).
pub fn delta(start: u64, end: u64) -> u64 {
    if cfg!(target_arch = "arm") {
        end.wrapping_sub(start) & 0x00ff_ffff
    } else {
        end.wrapping_sub(start)
    }
}

/// Converts a [`delta`] to instructions (see the module docs); `hz` is the board's SysTick
/// clock (unused on RISC-V).
pub fn to_instructions(delta: u64, hz: u32) -> u64 {
    if cfg!(target_arch = "arm") && hz > 0 {
        delta * 1_000_000_000 / u64::from(hz)
    } else {
        delta
    }
}

/// Called before every forward step: the instruction-counting plugin's marker.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn tinymla_mark() {
    core::hint::black_box(());
}
