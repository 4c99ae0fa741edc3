//! `tinymla`: run and inspect DeepSeek-V2/V3 (MLA) models stored as GGUF.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use tinymla_core::{
    ActivationPrecision, CacheStorage, ModelOptions, OverflowPolicy, SamplerConfig,
};
use tinymla_host::cli;
use tinymla_host::convert::{Options, OutType};
use tinymla_host::model_file::ModelFile;
use tinymla_host::session::Loaded;

/// The bundled demo models `run` uses without `-m`, best first (trained by
/// `scripts/train_demo.py`).
const DEMO_MODELS: [&str; 2] = [
    concat!(env!("CARGO_MANIFEST_DIR"), "/../models/demo-m.q8_0.gguf"),
    concat!(env!("CARGO_MANIFEST_DIR"), "/../models/demo-s.q8_0.gguf"),
];

#[derive(Parser)]
#[command(name = "tinymla", version, about = "MLA inference from flash to desktop")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

/// The repetition penalty when sampling and none is given.
const DEFAULT_REPEAT_PENALTY: f32 = 1.1;

/// Latent-cache row storage.
#[derive(Clone, Copy, ValueEnum)]
enum CacheArg {
    F32,
    F16,
    /// int8 c_kv, f16 k_pe.
    Q8,
    /// int8 c_kv and k_pe, 64-value blocks (594 bytes per token and layer for V2-Lite).
    Q8Compact,
}

impl From<CacheArg> for CacheStorage {
    fn from(c: CacheArg) -> Self {
        match c {
            CacheArg::F32 => CacheStorage::F32,
            CacheArg::F16 => CacheStorage::F16,
            CacheArg::Q8 => CacheStorage::Q8,
            CacheArg::Q8Compact => CacheStorage::Q8Compact,
        }
    }
}

/// Precision of the input vectors of quantised (Q8_0, Q4_0) matrix products.
#[derive(Clone, Copy, ValueEnum)]
enum ActivationsArg {
    /// One int8 block per 32 values, as llama.cpp: the fastest.
    Int8,
    /// Int8 plus its rounding residual (about 15 bits): about 300 times less rounding error,
    /// twice the integer work.
    Int16,
}

impl ActivationsArg {
    fn options(self) -> ModelOptions {
        let activations = match self {
            ActivationsArg::Int8 => ActivationPrecision::Int8,
            ActivationsArg::Int16 => ActivationPrecision::Int16,
        };
        ModelOptions { activations, ..ModelOptions::default() }
    }
}

/// Model, sampling and runtime options shared by `run` and `chat`. The sampling defaults are
/// llama.cpp's CLI defaults (temperature 0.8, top-k 40, top-p 0.95, min-p 0.05) with a mild
/// repetition penalty over the last 64 tokens (see host/README.md, "Sampling", for how they
/// were measured on the demo models); `--temp 0` is plain greedy decoding, penalty included
/// only if `--repeat-penalty` is given.
#[derive(clap::Args)]
struct Generation {
    /// The GGUF model (default: the bundled demo model).
    #[arg(short, long)]
    model: Option<PathBuf>,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.8)]
    temp: f32,
    /// Keep only the K most likely tokens (0 = all).
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    /// Nucleus sampling: keep the most likely tokens up to this probability mass (1 = off).
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    /// Keep only tokens at least this fraction as likely as the most likely one (0 = off).
    #[arg(long, default_value_t = 0.05)]
    min_p: f32,
    /// Divide positive logits (multiply negative ones) of recently seen tokens by this
    /// (1 = off). Default: 1.1 when sampling, 1 (off) with --temp 0.
    #[arg(long)]
    repeat_penalty: Option<f32>,
    /// How many of the latest tokens (prompt and reply) the repetition penalty looks at.
    #[arg(long, default_value_t = 64)]
    repeat_last_n: usize,
    /// Sampler seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Threads per matrix-vector product (output is identical for any count).
    #[arg(short = 't', long, default_value_t = 1)]
    threads: usize,
    /// Context length (default: the model's trained context, at most 4096).
    #[arg(long)]
    ctx: Option<usize>,
    /// Latent-cache storage.
    #[arg(long, value_enum, default_value_t = CacheArg::F32)]
    cache: CacheArg,
    /// Input precision of quantised matrix products.
    #[arg(long, value_enum, default_value_t = ActivationsArg::Int8)]
    activations: ActivationsArg,
}

impl Generation {
    fn sampler(&self) -> SamplerConfig {
        let default_penalty = if self.temp > 0.0 { DEFAULT_REPEAT_PENALTY } else { 1.0 };
        SamplerConfig {
            temperature: self.temp,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty.unwrap_or(default_penalty),
            repeat_last_n: self.repeat_last_n,
            seed: self.seed,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Generate text from a prompt, streaming it as it is produced.
    Run {
        /// The prompt.
        #[arg(short, long)]
        prompt: String,
        /// Tokens to generate.
        #[arg(short = 'n', long, default_value_t = 64)]
        n_tokens: usize,
        #[command(flatten)]
        gen: Generation,
    },
    /// Talk with a model: one message per line, the latent cache kept across turns.
    Chat {
        /// A system prompt.
        #[arg(short, long)]
        system: Option<String>,
        /// Most tokens per reply (default: half the context, at most 512).
        #[arg(short = 'n', long)]
        n_tokens: Option<usize>,
        #[command(flatten)]
        gen: Generation,
        /// When the context is full: `shift` drops the oldest tokens after the first --sinks
        /// and moves the rest down (positions stay inside the context: the conversation goes
        /// on forever); `slide` overwrites the oldest token but keeps counting positions (it
        /// stops at the model's trained context, then starts a new conversation); `error`
        /// starts a new conversation.
        #[arg(long, value_enum, default_value_t = OverflowArg::Shift)]
        overflow: OverflowArg,
        /// Tokens kept at the start of the context when shifting or sliding (attention sinks).
        #[arg(long, default_value_t = 4)]
        sinks: u32,
        /// Tokens one context shift drops (default: half of those after the sinks).
        #[arg(long)]
        discard: Option<u32>,
    },
    /// Serve the model over an OpenAI-compatible HTTP API (`/v1/chat/completions`,
    /// `/v1/completions`, `/v1/models`, `/health`, `/metrics`), decoding the sessions of all
    /// slots together.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        host: std::net::IpAddr,
        /// Port (0: any free port; the address is printed).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Sessions decoded together, each with a cache of --ctx positions allocated at start.
        #[arg(long, default_value_t = 4)]
        slots: usize,
        /// Requests that may wait for a free slot (more are answered 429).
        #[arg(long, default_value_t = 64)]
        queue: usize,
        /// Seconds a client has to send a request's headers, and then its body (408 after).
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
        /// Pack the Q8_0 / Q4_0 weights of the batched products once at start: about one more
        /// copy of those matrices in memory for slightly faster steps (5% at 8 sequences on
        /// a Zen 3); the output is the same.
        #[arg(long)]
        pack_weights: bool,
        #[command(flatten)]
        gen: Generation,
    },
    /// Show a GGUF file's metadata, hyperparameters, tensors and memory needs.
    Inspect {
        /// The GGUF model file.
        file: PathBuf,
        /// Context length to size the latent cache and scratch for.
        #[arg(long, default_value_t = 4096)]
        ctx: usize,
    },
    /// Print per-position logits as JSON.
    Logits {
        /// The GGUF model.
        #[arg(short, long)]
        model: PathBuf,
        /// Comma-separated token ids.
        #[arg(long, value_delimiter = ',', conflicts_with = "prompt")]
        tokens: Option<Vec<u32>>,
        /// Text to encode with the model's tokenizer instead.
        #[arg(short, long)]
        prompt: Option<String>,
        /// Input precision of quantised matrix products.
        #[arg(long, value_enum, default_value_t = ActivationsArg::Int8)]
        activations: ActivationsArg,
    },
    /// Write a synthetic model with DeepSeek-V2-Lite shapes and pseudo-random weights (a
    /// benchmark subject; it has no tokenizer, so use it with `bench` and `logits --tokens`).
    Synth {
        /// The shape.
        #[arg(long, value_enum, default_value_t = SynthShape::V2LiteScaled)]
        shape: SynthShape,
        /// Matrix storage.
        #[arg(long = "type", value_enum, default_value_t = SynthType::Q8_0)]
        weight_type: SynthType,
        /// Weight seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output GGUF file.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Convert a Hugging Face DeepSeek-V2/V3 checkpoint folder to a deepseek2 GGUF.
    Convert {
        /// The folder with config.json, *.safetensors (or model.safetensors.index.json and its
        /// shards) and tokenizer.json.
        dir: PathBuf,
        /// The GGUF file to write.
        #[arg(short, long)]
        output: PathBuf,
        /// Storage type of the weight matrices (norms, router and biases stay F32; Q8_0 / Q4_0
        /// fall back to F16 for rows that are not a multiple of 32; the K-quant mixes fall
        /// back as llama.cpp's do: Q5_0, Q5_1, Q4_0 or Q8_0, then F16).
        #[arg(long = "type", value_enum, default_value_t = OutType::F16)]
        out_type: OutType,
    },
    /// Measure prefill and decode tokens per second.
    Bench {
        /// The GGUF model.
        #[arg(short, long)]
        model: PathBuf,
        /// Comma-separated prompt lengths.
        #[arg(long, value_delimiter = ',', default_value = "16,128,512")]
        prompt: Vec<usize>,
        /// Comma-separated thread counts.
        #[arg(short = 't', long, value_delimiter = ',', default_value = "1")]
        threads: Vec<usize>,
        /// Tokens decoded after each prompt.
        #[arg(short = 'n', long, default_value_t = 32)]
        n_tokens: usize,
        /// Latent-cache storage.
        #[arg(long, value_enum, default_value_t = CacheArg::F32)]
        cache: CacheArg,
        /// Prompt tokens per prefill step: batched steps read each weight row once per batch;
        /// 1 prefills token by token, as decode runs; at most 64, the most one step takes.
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// Sequences decoded together after their prompts (each its own cache, as `serve`'s
        /// slots); the decode rate counts all of their tokens.
        #[arg(long, default_value_t = 1)]
        sequences: usize,
        /// Pack the Q8_0 / Q4_0 weights of batched products once before measuring, as `serve`
        /// does (prefill and --sequences steps; token-by-token steps do not use them).
        #[arg(long)]
        pack_weights: bool,
        /// Input precision of quantised matrix products.
        #[arg(long, value_enum, default_value_t = ActivationsArg::Int8)]
        activations: ActivationsArg,
    },
}

/// What a full cache does.
#[derive(Clone, Copy, ValueEnum)]
enum OverflowArg {
    Error,
    Slide,
    Shift,
}

/// Shapes `tinymla synth` writes.
#[derive(Clone, Copy, ValueEnum)]
enum SynthShape {
    /// V2-Lite's layer shapes, 4 layers, 6 experts (2 used): about 400 MB at Q8_0.
    V2LiteScaled,
    /// V2-Lite's attention with a thin dense FFN, 2 layers: the context-length bench subject.
    V2LiteAttention,
}

/// Matrix storage of `tinymla synth`.
#[derive(Clone, Copy, ValueEnum)]
#[allow(non_camel_case_types)] // `q8_0` as the command line and ggml spell it
enum SynthType {
    F32,
    F16,
    Q8_0,
}

/// `model`, or the best bundled demo model present.
fn model_or_demo(model: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let bundled = DEMO_MODELS.iter().map(PathBuf::from).find(|p| p.exists());
    match (model, bundled) {
        (Some(p), _) | (None, Some(p)) => Ok(p),
        (None, None) => bail!("no bundled demo model in models/; pass -m MODEL"),
    }
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tinymla: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    if let Some(name) = std::env::var_os(tinymla_core::kernels::KERNELS_ENV) {
        let name = name.to_string_lossy();
        if tinymla_core::kernels::Kernels::by_name(&name).is_none() {
            anyhow::bail!(
                "{}={name}: no such kernel table on this CPU (it runs \"{}\" by default)",
                tinymla_core::kernels::KERNELS_ENV,
                tinymla_core::kernels::Kernels::detect().name()
            );
        }
    }
    let stdout = std::io::stdout();
    match args.command {
        Command::Run { prompt, n_tokens, gen } => {
            let loaded = Loaded::open(&model_or_demo(gen.model.clone())?)?
                .with_options(gen.activations.options());
            let run_args = cli::run::RunArgs {
                prompt,
                n_tokens,
                sampler: gen.sampler(),
                ctx: gen.ctx,
                cache: gen.cache.into(),
                threads: gen.threads,
            };
            let stats = cli::run::run(&loaded, &run_args, &mut stdout.lock())?;
            println!();
            eprintln!(
                "prompt: {} tokens, {:.1} tok/s; generated: {} tokens, {:.1} tok/s{}",
                stats.prompt_tokens,
                stats.prompt_tokens as f64 / stats.prompt_secs.max(1e-9),
                stats.generated,
                stats.generated as f64 / stats.gen_secs.max(1e-9),
                match stats.shifts {
                    0 => String::new(),
                    k => format!(" ({k} context shifts)"),
                }
            );
        }
        Command::Serve { host, port, slots, queue, timeout, pack_weights, gen } => {
            let timeout = match std::time::Duration::try_from_secs_f64(timeout) {
                Ok(t) if !t.is_zero() => t,
                _ => bail!("--timeout {timeout} is not a positive number of seconds"),
            };
            let loaded = Loaded::open(&model_or_demo(gen.model.clone())?)?
                .with_options(gen.activations.options());
            let args = tinymla_host::serve::ServeArgs {
                addr: std::net::SocketAddr::new(host, port),
                slots,
                queue,
                ctx: gen.ctx,
                cache: gen.cache.into(),
                threads: gen.threads,
                defaults: gen.sampler(),
                timeout,
                pack_weights,
            };
            tinymla_host::serve::serve(&loaded, &args, |addr, plan| {
                println!(
                    "tinymla serve: {} on http://{addr} ({slots} slots, {} bytes of cache each, \
                     {} bytes shared, {} bytes of packed weights; queue {queue})",
                    loaded.path().display(),
                    plan.cache_per_slot,
                    plan.shared,
                    plan.packed_weights,
                );
                let _ = std::io::stdout().flush();
            })?;
        }
        Command::Chat { system, n_tokens, gen, overflow, sinks, discard } => {
            let loaded = Loaded::open(&model_or_demo(gen.model.clone())?)?
                .with_options(gen.activations.options());
            let ctx = gen.ctx.unwrap_or(loaded.default_context()?);
            let policy = match (overflow, discard) {
                (OverflowArg::Error, _) => OverflowPolicy::Error,
                (OverflowArg::Slide, _) => OverflowPolicy::Slide { sinks },
                (OverflowArg::Shift, Some(discard)) => OverflowPolicy::Shift { sinks, discard },
                // No room after the sinks: the cache refuses it with the reason.
                (OverflowArg::Shift, None) => OverflowPolicy::shift_half(ctx, sinks)
                    .unwrap_or(OverflowPolicy::Shift { sinks, discard: 0 }),
            };
            let args = cli::chat::ChatArgs {
                system,
                n_tokens: n_tokens.unwrap_or((ctx / 2).clamp(1, 512)),
                sampler: gen.sampler(),
                ctx: Some(ctx),
                cache: gen.cache.into(),
                policy,
                threads: gen.threads,
                show_prompt: std::io::IsTerminal::is_terminal(&std::io::stdin()),
            };
            let stdin = std::io::stdin();
            let stats = cli::chat::chat(
                &loaded,
                &args,
                &mut stdin.lock(),
                &mut stdout.lock(),
                &mut std::io::stderr(),
            )?;
            eprintln!(
                "\n{} turns, {} tokens read, {} generated, {} context shifts, {} context resets",
                stats.turns, stats.fed, stats.generated, stats.shifts, stats.resets
            );
        }
        Command::Inspect { file, ctx } => {
            let model = ModelFile::open(&file)?;
            cli::inspect::run(model.bytes(), ctx, &mut stdout.lock())
                .with_context(|| format!("inspecting {}", file.display()))?;
        }
        Command::Logits { model, tokens, prompt, activations } => {
            let loaded = Loaded::open(&model)?.with_options(activations.options());
            let name = model.display().to_string();
            let json =
                cli::logits::logits_json(&loaded, &name, tokens.as_deref(), prompt.as_deref())?;
            let mut out = stdout.lock();
            let written = serde_json::to_writer(&mut out, &json)
                .map_err(std::io::Error::from)
                .and_then(|()| writeln!(out));
            match written {
                // A closed pipe (`| head`) is the reader's choice, not an error.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other?,
            }
        }
        Command::Synth { shape, weight_type, seed, output } => {
            use tinymla_host::synth::{SynthSpec, WeightType};
            let ty = match weight_type {
                SynthType::F32 => WeightType::F32,
                SynthType::F16 => WeightType::F16,
                SynthType::Q8_0 => WeightType::Q8_0,
            };
            let spec = match shape {
                SynthShape::V2LiteScaled => SynthSpec::v2_lite_scaled(ty),
                SynthShape::V2LiteAttention => SynthSpec::v2_lite_attention(2, ty),
            };
            let bytes = spec.to_gguf(seed);
            tinymla_host::durable::write_atomically(&output, anyhow::Error::from, |w| {
                Ok(w.write_all(&bytes)?)
            })
            .with_context(|| format!("writing {}", output.display()))?;
            eprintln!(
                "{}: {} parameters, {} bytes",
                output.display(),
                spec.n_params(),
                bytes.len()
            );
        }
        Command::Convert { dir, output, out_type } => {
            let opts = Options { input: dir, output, out_type, progress: true };
            cli::convert::run(&opts, &mut std::io::stderr())?;
        }
        Command::Bench {
            model,
            prompt,
            threads,
            n_tokens,
            cache,
            batch,
            sequences,
            pack_weights,
            activations,
        } => {
            let loaded = Loaded::open(&model)?.with_options(activations.options());
            let out = &mut stdout.lock();
            let opts = cli::bench::BenchOptions {
                n_gen: n_tokens,
                storage: cache.into(),
                batch,
                sequences,
                pack_weights,
            };
            cli::bench::bench(&loaded, &prompt, &threads, opts, out)?;
        }
    }
    Ok(())
}
