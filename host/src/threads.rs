//! The host's worker threads: a persistent pool that runs core's row spans.
//!
//! [`Threads::new(n)`](Threads::new) keeps `n - 1` workers alive for the whole session; the
//! calling thread runs one span itself, so `n` threads work on each large product. Because
//! core computes every output row with the same code whatever span it is in, logits are
//! bit-identical for every `n` (the integration tests check this).

use tinymla_core::{Parallel, RowSpan};

/// `n` threads (the caller plus a pool of `n - 1`), as a [`Parallel`] for
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
    /// Starts `threads - 1` workers.
    ///
    /// # Errors
    /// [`ThreadsError::Zero`] for 0, [`ThreadsError::Spawn`] if the OS refuses.
    pub fn new(threads: usize) -> Result<Self, ThreadsError> {
        let pool = match threads {
            0 => return Err(ThreadsError::Zero),
            1 => None,
            n => Some(
                rayon_core::ThreadPoolBuilder::new()
                    .num_threads(n - 1)
                    .thread_name(|i| format!("tinymla-worker-{i}"))
                    .build()
                    .map_err(ThreadsError::Spawn)?,
            ),
        };
        Ok(Threads { pool, threads })
    }

    /// Threads working on each large product, the caller included.
    pub fn count(&self) -> usize {
        self.threads
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
        // The scope returns only when every spawned span is done.
        pool.in_place_scope(|scope| {
            for span in theirs {
                scope.spawn(move |_| work(span));
            }
            work(mine);
        });
    }
}
