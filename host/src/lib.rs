//! Host-side (std) parts of tinymla: memory-mapped model files and the `tinymla` subcommands.

pub mod chat_template;
pub mod cli;
pub mod convert;
pub mod durable;
pub mod gguf_writer;
pub mod model_file;
pub mod roofline;
pub mod serve;
pub mod session;
pub mod synth;
pub mod threads;
pub mod tokenizer;
