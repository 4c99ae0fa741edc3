//! `tinymla serve`: an OpenAI-compatible HTTP server whose sessions are decoded together.
//!
//! Threads: the engine ([`engine`]) runs on its own thread with the model, the slots' caches
//! (allocated once at start) and the worker pool; the HTTP side ([`http`]) runs on a small
//! tokio runtime, checks and encodes requests, and talks to the engine through a bounded queue
//! (429 when full) and one bounded event channel per request.
//!
//! Why axum on hyper: hyper is the HTTP/1.1 implementation the Rust ecosystem's servers share
//! (its header-read timeout closes connections that never finish their headers), and axum adds
//! routing and typed extractors over it with little code; both are maintained by the tokio
//! project. The connection loop is ours (hyper-util), so the timeouts and a cap on open
//! connections are explicit.

pub mod api;
pub mod engine;
pub mod http;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tinymla_core::{BatchScratch, CacheStorage, SamplerConfig};

use crate::session::{Loaded, SessionError};
use crate::threads::Threads;

/// Most connections open at once; further clients wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 1024;

/// What `serve` does.
#[derive(Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port).
    pub addr: SocketAddr,
    /// Sessions decoded together, each with its own cache (at most
    /// [`BatchScratch::MAX_TOKENS`]).
    pub slots: usize,
    /// Requests that may wait for a slot (429 beyond).
    pub queue: usize,
    /// Positions per slot (default: as `run`).
    pub ctx: Option<usize>,
    /// Cache row storage.
    pub cache: CacheStorage,
    /// Worker threads.
    pub threads: usize,
    /// Sampling defaults for fields a request leaves out.
    pub defaults: SamplerConfig,
    /// Time a client has to send a request's headers, and then its body.
    pub timeout: std::time::Duration,
    /// Pack the batched products' weights once at start (`ModelWith::with_packed_weights`):
    /// faster steps for about one more copy of the Q8_0 / Q4_0 matrices in memory.
    pub pack_weights: bool,
}

/// Why the server stopped or could not start.
#[derive(Debug)]
pub enum ServeError {
    /// The model, its buffers or the threads.
    Session(SessionError),
    /// `--slots` out of range.
    BadSlots {
        /// Asked for.
        slots: usize,
    },
    /// Binding the address or running the runtime failed.
    Io(std::io::Error),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::Session(e) => write!(f, "{e}"),
            ServeError::BadSlots { slots } => {
                write!(f, "--slots {slots} is not in 1..={}", BatchScratch::MAX_TOKENS)
            }
            ServeError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ServeError {}

impl From<SessionError> for ServeError {
    fn from(e: SessionError) -> Self {
        ServeError::Session(e)
    }
}

/// Loads the model, allocates every slot, binds `args.addr`, calls `ready` with the bound
/// address and the bytes allocated, and serves until interrupted (Ctrl-C).
///
/// # Errors
/// [`ServeError`] if anything fails before serving starts.
pub fn serve(
    loaded: &Loaded,
    args: &ServeArgs,
    ready: impl FnOnce(SocketAddr, engine::MemoryPlan),
) -> Result<(), ServeError> {
    if args.slots == 0 || args.slots > BatchScratch::MAX_TOKENS {
        return Err(ServeError::BadSlots { slots: args.slots });
    }
    let unpacked = loaded.model()?;
    // Weights packed once for the batched products every step runs (bit-identical results).
    let packed_bytes = if args.pack_weights { unpacked.packed_weight_bytes() } else { 0 };
    let mut packed = Vec::new();
    if packed.try_reserve_exact(packed_bytes).is_err() {
        return Err(ServeError::Io(std::io::Error::other(format!(
            "cannot allocate {packed_bytes} bytes for packed weights (drop --pack-weights)"
        ))));
    }
    packed.resize(packed_bytes, 0u8);
    let model = if packed_bytes > 0 {
        unpacked.with_packed_weights(&mut packed).map_err(SessionError::Step)?
    } else {
        unpacked
    };
    let tokenizer = Arc::new(loaded.tokenizer()?);
    let template = crate::cli::chat::template_of(&tokenizer)?;
    let ctx = args.ctx.map_or_else(|| loaded.default_context(), Ok)?;
    let trained = model.config().context_length;
    if ctx == 0 || ctx > trained {
        return Err(SessionError::BadContext { ctx, trained }.into());
    }
    let config = engine::EngineConfig { slots: args.slots, ctx, storage: args.cache };
    let plan = engine::MemoryPlan {
        packed_weights: packed_bytes,
        ..engine::memory_bytes(&model, &config)?
    };
    let threads = Threads::new(args.threads).map_err(SessionError::Threads)?;
    let queue = Arc::new(engine::Queue::new(args.queue));
    let model_name = loaded
        .path()
        .file_stem()
        .map_or_else(|| "model".to_owned(), |s| s.to_string_lossy().into_owned());
    let server = Arc::new(http::Server {
        queue: Arc::clone(&queue),
        tokenizer: Arc::clone(&tokenizer),
        template,
        ctx,
        slots: args.slots,
        model_name,
        defaults: args.defaults,
        next_id: AtomicU64::new(1),
        body_timeout: args.timeout,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("tinymla-http")
        .enable_io()
        .enable_time()
        .build()
        .map_err(ServeError::Io)?;
    let stopping = AtomicBool::new(false);

    std::thread::scope(|scope| {
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (model, tokenizer, threads, queue, stopping) =
            (&model, &tokenizer, &threads, &queue, &stopping);
        let engine = scope.spawn(move || {
            let stop = || stopping.load(Ordering::Relaxed);
            engine::run(model, tokenizer, config, threads, queue, &stop, move || {
                let _ = started_tx.send(());
            })
        });
        // The engine allocates everything first; if that fails it returns at once.
        if started_rx.recv().is_err() {
            return match engine.join() {
                Ok(Err(e)) => Err(e.into()),
                _ => Err(ServeError::Io(std::io::Error::other("the engine did not start"))),
            };
        }
        let served = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind(args.addr).await?;
            ready(listener.local_addr()?, plan);
            accept_loop(listener, http::router(server), args.timeout).await
        });
        stopping.store(true, Ordering::Relaxed);
        let engine = engine.join();
        served.map_err(ServeError::Io)?;
        match engine {
            Ok(r) => r.map_err(ServeError::from),
            Err(_) => Err(ServeError::Io(std::io::Error::other("the engine thread panicked"))),
        }
    })
}

/// Accepts connections (at most [`MAX_CONNECTIONS`] open) until Ctrl-C; each is served by
/// hyper's HTTP/1.1, closed if its headers take longer than `header_timeout`.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    header_timeout: std::time::Duration,
) -> std::io::Result<()> {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => p.map_err(std::io::Error::other)?,
            _ = &mut interrupted => return Ok(()),
        };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // A connection that failed before it was accepted (reset, out of descriptors
                // for a moment): keep serving the others.
                Err(_) => continue,
            },
            _ = &mut interrupted => return Ok(()),
        };
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(permit);
        });
    }
}
