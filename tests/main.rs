//! tinymla's cross-crate integration tests, built as one binary so it links once.

mod api;
mod batch;
mod cache;
mod capi;
mod common;
mod demo;
mod docs;
mod firmware;
mod golden;
mod hostile;
mod kquant;
mod layers;
mod long;
mod sequences;
mod shift;
mod threads;
mod tokenizer;
