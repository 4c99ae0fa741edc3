//! Ending the program with a status the host sees.

/// Ends the run with `code` (0 = success). Under QEMU this is a semihosting
/// `SYS_EXIT_EXTENDED`, so `code` becomes QEMU's exit status; on a real board (RTT) it stops at
/// a breakpoint, which probe-rs reports.
pub fn exit(code: i32) -> ! {
    #[cfg(feature = "semihosting")]
    {
        semihosting::process::exit(code)
    }
    #[cfg(not(feature = "semihosting"))]
    {
        let _ = code;
        loop {
            #[cfg(target_arch = "arm")]
            cortex_m::asm::bkpt();
            #[cfg(target_arch = "riscv32")]
            // SAFETY: a breakpoint only hands control to the attached debugger (or traps).
            unsafe {
                riscv::asm::ebreak()
            };
        }
    }
}
