//! The `tinymla` subcommands, each a function that writes its report to a `Write`.

pub mod inspect;
