//! The `tinymla` subcommands, each a function that writes its report to a `Write`.

pub mod bench;
pub mod chat;
pub mod convert;
pub mod inspect;
pub mod logits;
pub mod run;
