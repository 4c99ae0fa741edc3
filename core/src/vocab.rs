//! Token decoding from the GGUF vocabulary (placeholder; being written).
