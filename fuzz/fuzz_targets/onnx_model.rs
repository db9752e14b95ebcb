//! Any bytes as an ONNX model handed to wasi-nn `load`: the external-data
//! check never panics, and a model it passes names no external file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandscore_untrusted::onnx::{Policy, check};

fuzz_target!(|data: &[u8]| {
    if let Ok(facts) = check(data, Policy::Inline) {
        assert_eq!(facts.external_tensors, 0, "inline models carry no external data");
    }
});
