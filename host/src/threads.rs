//! The host's worker threads: a persistent pool that runs core's row spans.
//!
//! [`Threads::new(n)`](Threads::new) keeps `n` workers alive for the whole session. A step run
//! through [`Threads::install`] executes on a worker, and each large product it meets is cut
//! into spans that the other workers steal from that worker's queue; spans nobody has stolen by
//! the time it finishes its own it runs itself. So a worker that the OS has descheduled (on a
//! machine busy with other work) delays a product by at most the span it took, not by a whole
//! time slice before it even starts. Called outside `install`, the caller runs one span and
//! waits for the pool's. Because core computes every output row with the same code whatever
//! span it is in, logits are bit-identical for every `n` (the integration tests check this).

use tinymla_core::{Parallel, RowSpan};

/// A pool of `n` threads, as a [`Parallel`] for
/// [`tinymla_core::ModelWith::forward_with`].
#[derive(Debug)]
pub struct Threads {
    /// `None` for one thread: everything runs on the caller.
    pool: Option<rayon_core::ThreadPool>,
    threads: usize,
}

/// Why the pool could not be started.
#[derive(Debug)]
pub enum ThreadsError {
    /// `--threads 0`.
    Zero,
    /// The operating system refused to start the workers.
    Spawn(rayon_core::ThreadPoolBuildError),
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

impl Threads {
    /// Starts `threads` workers (none for 1: everything then runs on the caller).
    ///
    /// # Errors
    /// [`ThreadsError::Zero`] for 0, [`ThreadsError::Spawn`] if the OS refuses.
    pub fn new(threads: usize) -> Result<Self, ThreadsError> {
        let pool = match threads {
            0 => return Err(ThreadsError::Zero),
            1 => None,
            n => Some(
                rayon_core::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .thread_name(|i| format!("tinymla-worker-{i}"))
                    .build()
                    .map_err(ThreadsError::Spawn)?,
            ),
        };
        Ok(Threads { pool, threads })
    }

    /// Threads working on each large product.
    pub fn count(&self) -> usize {
        self.threads
    }

    /// Runs `step` (e.g. one `forward_with`) on a worker of the pool, so the products in it
    /// are shared out by work stealing (see the module docs); on the caller with one thread.
    pub fn install<R: Send>(&self, step: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(pool) => pool.install(step),
            None => step(),
        }
    }
}

impl Parallel for Threads {
    fn ways(&self) -> usize {
        self.threads
    }

    fn run(&self, spans: &mut [RowSpan<'_>], work: &(dyn Fn(&mut RowSpan<'_>) + Sync)) {
        let Some(pool) = &self.pool else {
            spans.iter_mut().for_each(work);
            return;
        };
        let Some((mine, theirs)) = spans.split_first_mut() else {
            return;
        };
        if pool.current_thread_index().is_some() {
            // On a worker (inside `install`): spawned spans go to this worker's queue; while
            // the scope waits it runs any that no other worker has stolen.
            rayon_core::scope(|scope| {
                for span in theirs {
                    scope.spawn(move |_| work(span));
                }
                work(mine);
            });
            return;
        }
        // The scope returns only when every spawned span is done.
        pool.in_place_scope(|scope| {
            for span in theirs {
                scope.spawn(move |_| work(span));
            }
            work(mine);
        });
    }
}
