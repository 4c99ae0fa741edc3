//! The host's worker threads: a persistent pool that runs core's row spans.
//!
//! [`Threads::new(n)`](Threads::new) starts `n - 1` workers that live as long as the pool; the
//! thread that calls [`Parallel::run`] is the `n`-th. A product's spans are taken one at a time
//! from a shared counter by whichever thread is free, the caller included, so a worker that the
//! OS has descheduled delays a product by at most the span it took. Between products a worker
//! spins (for [`SPIN_BEFORE_SLEEP`]) instead of sleeping at once: a step posts a product every
//! few tens of microseconds (about 180 per layer of a batched step), and waking a sleeping thread
//! costs about as much on a virtual machine, where an idle vCPU halts. A worker idle for longer
//! (a chat waiting for its user) sleeps until the next product. Because core computes every
//! output row with the same code whatever span it is in, logits are bit-identical for every `n`
//! (the integration tests check this).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tinymla_core::{Parallel, RowSpan};

/// How long an idle worker polls for the next product before it sleeps.
pub const SPIN_BEFORE_SLEEP: Duration = Duration::from_millis(1);

/// A pool of `n` threads (the caller and `n - 1` workers), as a [`Parallel`] for
/// [`tinymla_core::ModelWith::forward_with`].
#[derive(Debug)]
pub struct Threads {
    /// `None` for one thread: everything runs on the caller.
    shared: Option<Arc<Shared>>,
    workers: Vec<JoinHandle<()>>,
    threads: usize,
}

/// Why the pool could not be started.
#[derive(Debug)]
pub enum ThreadsError {
    /// `--threads 0`.
    Zero,
    /// The operating system refused to start the workers.
    Spawn(std::io::Error),
}

impl std::fmt::Display for ThreadsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ThreadsError::Zero => write!(f, "--threads must be at least 1"),
            ThreadsError::Spawn(e) => write!(f, "cannot start worker threads: {e}"),
        }
    }
}

impl std::error::Error for ThreadsError {}

/// What the caller and the workers share.
#[derive(Debug, Default)]
struct Shared {
    /// The product being run (a [`Job`] on the posting caller's stack), null between products.
    job: AtomicPtr<Job<'static>>,
    /// Bumped for every posted product and at shutdown: what idle workers watch.
    posted: AtomicUsize,
    /// Workers that may hold a reference to `*job` (counted before they read the pointer).
    active: AtomicUsize,
    /// Held by the one caller whose product is posted; a second caller meanwhile (nested, or
    /// from another thread) runs its spans itself.
    posting: AtomicBool,
    /// Workers asleep or about to sleep on `wake`.
    sleepers: AtomicUsize,
    sleep: Mutex<()>,
    wake: Condvar,
    stop: AtomicBool,
}

/// One posted product: its spans, handed out once each through `next`.
struct Job<'w> {
    /// `len` spans (their own lifetime erased: they outlive the job, see [`Threads::run`]).
    spans: *mut RowSpan<'static>,
    len: usize,
    work: &'w (dyn Fn(&mut RowSpan<'_>) + Sync),
    next: AtomicUsize,
    done: AtomicUsize,
    panicked: AtomicBool,
}

impl Job<'_> {
    /// Runs spans until none is left to take.
    fn take_spans(&self) {
        loop {
            let i = self.next.fetch_add(1, SeqCst);
            if i >= self.len {
                return;
            }
            #[allow(unsafe_code, reason = "a span shared with the workers by raw pointer")]
            // SAFETY: `i < len` indexes the caller's span slice, which outlives the job (the
            // caller waits for `done == len` and `active == 0` before returning), and the
            // counter hands each index out exactly once, so this is the only reference to it.
            let span = unsafe { &mut *self.spans.add(i) };
            if catch_unwind(AssertUnwindSafe(|| (self.work)(span))).is_err() {
                self.panicked.store(true, SeqCst);
            }
            self.done.fetch_add(1, SeqCst);
        }
    }
}

impl Threads {
    /// Starts `threads - 1` workers (none for 1: everything then runs on the caller).
    ///
    /// # Errors
    /// [`ThreadsError::Zero`] for 0, [`ThreadsError::Spawn`] if the OS refuses.
    pub fn new(threads: usize) -> Result<Self, ThreadsError> {
        if threads == 0 {
            return Err(ThreadsError::Zero);
        }
        let mut pool = Threads { shared: None, workers: Vec::new(), threads };
        if threads == 1 {
            return Ok(pool);
        }
        let shared = Arc::new(Shared::default());
        pool.shared = Some(Arc::clone(&shared));
        for i in 1..threads {
            let shared = Arc::clone(&shared);
            let worker = std::thread::Builder::new()
                .name(format!("tinymla-worker-{i}"))
                .spawn(move || work_loop(&shared))
                .map_err(ThreadsError::Spawn)?;
            // On an error here `pool` is dropped, which stops the workers already started.
            pool.workers.push(worker);
        }
        Ok(pool)
    }

    /// Threads working on each large product.
    pub fn count(&self) -> usize {
        self.threads
    }

    /// Runs `step` (e.g. one `forward_with`) on the calling thread, which takes part in every
    /// product the step posts.
    pub fn install<R: Send>(&self, step: impl FnOnce() -> R + Send) -> R {
        step()
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            shared.stop.store(true, SeqCst);
            shared.posted.fetch_add(1, SeqCst);
            let _sleeping = shared.sleep.lock().unwrap_or_else(PoisonError::into_inner);
            shared.wake.notify_all();
        }
        for worker in self.workers.drain(..) {
            // A worker's panics are caught per span, so a join error is not expected; there is
            // nothing more to do with one while dropping.
            let _ = worker.join();
        }
    }
}

impl Parallel for Threads {
    fn ways(&self) -> usize {
        self.threads
    }

    fn run(&self, spans: &mut [RowSpan<'_>], work: &(dyn Fn(&mut RowSpan<'_>) + Sync)) {
        let Some(shared) = &self.shared else {
            spans.iter_mut().for_each(work);
            return;
        };
        if spans.len() < 2 || shared.posting.swap(true, SeqCst) {
            spans.iter_mut().for_each(work);
            return;
        }
        let job = Job {
            spans: spans.as_mut_ptr().cast::<RowSpan<'static>>(),
            len: spans.len(),
            work,
            next: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
        };
        shared.job.store((&raw const job).cast::<Job<'static>>().cast_mut(), SeqCst);
        shared.posted.fetch_add(1, SeqCst);
        if shared.sleepers.load(SeqCst) > 0 {
            let _sleeping = shared.sleep.lock().unwrap_or_else(PoisonError::into_inner);
            shared.wake.notify_all();
        }
        job.take_spans();
        // Spans other threads took may still be running.
        wait_until(|| job.done.load(SeqCst) >= job.len);
        // No worker can reach `job` once the pointer is null and the ones that had read it
        // are done: a worker counts itself in `active` before it reads the pointer.
        shared.job.store(std::ptr::null_mut(), SeqCst);
        wait_until(|| shared.active.load(SeqCst) == 0);
        shared.posting.store(false, SeqCst);
        assert!(!job.panicked.load(SeqCst), "a worker thread panicked while running a span");
    }
}

/// Polls `ready` (spinning, then yielding the CPU between polls) until it holds.
fn wait_until(ready: impl Fn() -> bool) {
    let mut polls = 0u32;
    while !ready() {
        polls = polls.saturating_add(1);
        if polls < 1 << 12 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// A worker: waits for a product (spinning, then sleeping), runs spans of it, and again.
fn work_loop(shared: &Shared) {
    let mut seen = shared.posted.load(SeqCst);
    loop {
        wait_for_post(shared, seen);
        if shared.stop.load(SeqCst) {
            return;
        }
        seen = shared.posted.load(SeqCst);
        shared.active.fetch_add(1, SeqCst);
        let job = shared.job.load(SeqCst);
        // SAFETY: non-null `job` points to a `Job` whose caller has not returned: the caller
        // nulls the pointer before it waits for `active == 0`, and this worker counted itself
        // in `active` before reading the pointer, so the caller waits for it to finish here.
        #[allow(unsafe_code, reason = "the caller's job, read by raw pointer")]
        let job = unsafe { job.as_ref() };
        if let Some(job) = job {
            job.take_spans();
        }
        shared.active.fetch_sub(1, SeqCst);
    }
}

/// Returns once `shared.posted` differs from `seen` (or the pool stops): polls for
/// [`SPIN_BEFORE_SLEEP`], then sleeps on `shared.wake`.
fn wait_for_post(shared: &Shared, seen: usize) {
    let posted = || shared.posted.load(SeqCst) != seen || shared.stop.load(SeqCst);
    let start = Instant::now();
    let mut polls = 0u32;
    while !posted() {
        std::hint::spin_loop();
        polls = polls.wrapping_add(1);
        if polls.is_multiple_of(256) && start.elapsed() >= SPIN_BEFORE_SLEEP {
            // Counted before the check under the lock; the poster bumps `posted` before it
            // reads `sleepers`, and notifies under the lock, so no post is missed.
            shared.sleepers.fetch_add(1, SeqCst);
            let mut guard = shared.sleep.lock().unwrap_or_else(PoisonError::into_inner);
            while !posted() {
                guard = shared.wake.wait(guard).unwrap_or_else(PoisonError::into_inner);
            }
            drop(guard);
            shared.sleepers.fetch_sub(1, SeqCst);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every span of every product runs exactly once, on any pool size, including products
    /// posted after the workers fell asleep and products posted from inside a span.
    #[test]
    fn every_span_runs_once() {
        for n in [1usize, 2, 3, 5] {
            let pool = Threads::new(n).expect("threads");
            for round in 0..200 {
                let mut outs = [0.0f32; 37];
                let mut spans: Vec<RowSpan<'_>> =
                    outs.chunks_mut(5).enumerate().map(|(i, o)| RowSpan::new(i * 5, o)).collect();
                pool.run(&mut spans, &|span| {
                    // A nested product runs inline.
                    let mut inner = [0.0f32; 3];
                    let mut inner_spans = [RowSpan::new(0, &mut inner)];
                    pool.run(&mut inner_spans, &|s| s.out().fill(1.0));
                    let first = span.first_row();
                    for (i, o) in span.out().iter_mut().enumerate() {
                        *o += (first + i) as f32 + inner[0];
                    }
                });
                drop(spans);
                for (i, o) in outs.iter().enumerate() {
                    assert_eq!(*o, i as f32 + 1.0, "threads {n} round {round}");
                }
                if round == 100 {
                    std::thread::sleep(SPIN_BEFORE_SLEEP * 3);
                }
            }
        }
    }

    /// A worker that fell asleep wakes for the next product: two spans that each wait for the
    /// other to start finish only if two threads run them at once.
    #[test]
    fn sleeping_workers_wake_for_the_next_product() {
        let pool = Threads::new(2).expect("threads");
        for _ in 0..3 {
            std::thread::sleep(SPIN_BEFORE_SLEEP * 5);
            let started = AtomicUsize::new(0);
            let met = AtomicUsize::new(0);
            let (mut a, mut b) = ([0.0f32; 1], [0.0f32; 1]);
            let mut spans = [RowSpan::new(0, &mut a), RowSpan::new(1, &mut b)];
            pool.run(&mut spans, &|_| {
                started.fetch_add(1, SeqCst);
                let deadline = Instant::now() + Duration::from_secs(10);
                while started.load(SeqCst) < 2 && Instant::now() < deadline {
                    std::thread::yield_now();
                }
                if started.load(SeqCst) >= 2 {
                    met.fetch_add(1, SeqCst);
                }
            });
            assert_eq!(met.load(SeqCst), 2, "the sleeping worker did not take its span");
        }
    }

    #[test]
    fn zero_threads_is_an_error() {
        assert!(matches!(Threads::new(0), Err(ThreadsError::Zero)));
    }
}
