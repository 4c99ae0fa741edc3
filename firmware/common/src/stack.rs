//! Stack painting: fill the unused stack with a pattern at start-up, and later find the
//! deepest word that was overwritten.

const PAINT: u32 = 0xC0DE_5AFE;
/// Bytes painted below the stack pointer (bounded by the end of the statics).
pub const WINDOW: usize = 64 * 1024;

unsafe extern "C" {
    /// End of the statics (and start of any linker heap): both runtimes define it.
    static __sheap: u8;
    /// The initial stack pointer (top of the stack): both runtimes define it.
    static _stack_start: u8;
}

/// The painted range `[lo, hi)`, word aligned.
#[derive(Clone, Copy, Debug)]
pub struct Painted {
    lo: usize,
    hi: usize,
}

#[inline(always)]
fn stack_pointer() -> usize {
    let marker = 0u8;
    core::hint::black_box(&marker) as *const u8 as usize
}

/// Paints up to [`WINDOW`] bytes below the current stack pointer (keeping a 256-byte margin
/// for this function's own frame).
#[inline(never)]
pub fn paint() -> Painted {
    let hi = (stack_pointer() - 256) & !3;
    let statics_end = (&raw const __sheap) as usize;
    let lo = (hi.saturating_sub(WINDOW).max(statics_end) + 3) & !3;
    let mut p = lo;
    while p < hi {
        // SAFETY: [lo, hi) lies between the end of the statics and 256 bytes below the live
        // stack pointer: memory no Rust object owns yet (the stack grows into it later).
        unsafe { core::ptr::write_volatile(p as *mut u32, PAINT) };
        p += 4;
    }
    Painted { lo, hi }
}

impl Painted {
    /// Peak stack bytes: from the top of the stack (`_stack_start`, so the frames above
    /// `paint`'s caller count too) down to the deepest painted word that was overwritten.
    pub fn used(&self) -> usize {
        let mut p = self.lo;
        while p < self.hi {
            // SAFETY: reading painted stack memory below the current frame, word aligned.
            if unsafe { core::ptr::read_volatile(p as *const u32) } != PAINT {
                break;
            }
            p += 4;
        }
        ((&raw const _stack_start) as usize).saturating_sub(p)
    }

    /// True when even the lowest painted word was overwritten, so [`Painted::used`] is only a
    /// lower bound.
    pub fn overflowed_window(&self) -> bool {
        // SAFETY: as in `used`: the lowest painted word, below every live frame.
        self.lo < self.hi && unsafe { core::ptr::read_volatile(self.lo as *const u32) } != PAINT
    }
}
