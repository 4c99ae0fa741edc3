//! `tinymla`: run and inspect DeepSeek-V2/V3 (MLA) models stored as GGUF.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tinymla_host::cli;
use tinymla_host::model_file::ModelFile;

#[derive(Parser)]
#[command(name = "tinymla", version, about = "MLA inference from flash to desktop")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show a GGUF file's metadata, hyperparameters, tensors and memory needs.
    Inspect {
        /// The GGUF model file.
        file: PathBuf,
        /// Context length to size the latent cache and scratch for.
        #[arg(long, default_value_t = 4096)]
        ctx: usize,
    },
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
    match args.command {
        Command::Inspect { file, ctx } => {
            let model = ModelFile::open(&file)?;
            let stdout = std::io::stdout();
            cli::inspect::run(model.bytes(), ctx, &mut stdout.lock())
                .with_context(|| format!("inspecting {}", file.display()))?;
        }
    }
    Ok(())
}
