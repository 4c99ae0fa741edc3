//! [`PeakHeap`]: `embedded-alloc`'s linked-list heap plus a high-water mark.

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicUsize, Ordering};

use embedded_alloc::LlffHeap;

/// A first-fit heap that remembers the most bytes it ever had allocated.
pub struct PeakHeap {
    heap: LlffHeap,
    peak: AtomicUsize,
    size: AtomicUsize,
}

impl PeakHeap {
    /// An uninitialised heap; call [`PeakHeap::init`] before the first allocation.
    pub const fn empty() -> Self {
        PeakHeap { heap: LlffHeap::empty(), peak: AtomicUsize::new(0), size: AtomicUsize::new(0) }
    }

    /// Hands `mem` to the heap.
    ///
    /// # Safety
    /// Call once, before any allocation; `mem` must not be used by anything else afterwards.
    pub unsafe fn init(&self, mem: &'static mut [core::mem::MaybeUninit<u8>]) {
        self.size.store(mem.len(), Ordering::Relaxed);
        // SAFETY: the caller guarantees one call and exclusive, 'static ownership of `mem`.
        unsafe { self.heap.init(mem.as_mut_ptr() as usize, mem.len()) }
    }

    /// The heap's size in bytes.
    pub fn size(&self) -> usize {
        self.size.load(Ordering::Relaxed)
    }

    /// Bytes allocated now.
    pub fn used(&self) -> usize {
        self.heap.used()
    }

    /// The most bytes ever allocated at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
}

// SAFETY: every call is forwarded unchanged to `LlffHeap`, a correct `GlobalAlloc`; the peak
// bookkeeping only reads its state. (Single core: a plain load/store max is enough.)
unsafe impl GlobalAlloc for PeakHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { self.heap.alloc(layout) };
        let used = self.heap.used();
        if used > self.peak.load(Ordering::Relaxed) {
            self.peak.store(used, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.heap.dealloc(ptr, layout) }
    }
}
