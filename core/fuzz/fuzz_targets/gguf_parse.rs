//! `Gguf::parse` on arbitrary bytes, then every accessor a host tool would use.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tinymla_core::Gguf;

fuzz_target!(|data: &[u8]| {
    if let Ok(g) = Gguf::parse(data) {
        for (key, value) in g.metadata() {
            let _ = (key.len(), value.as_u64(), value.as_f64(), value.as_str());
            if let Some(a) = value.as_array() {
                a.iter().for_each(drop);
            }
        }
        for t in g.tensors() {
            assert_eq!(g.tensor(t.name).map(|u| u.bytes.len()), Some(t.bytes.len()));
        }
        let _ = g.fingerprint();
    }
});
