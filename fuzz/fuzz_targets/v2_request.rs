//! Any bytes as a V2 inference request body, JSON alone or a JSON header and
//! binary tensor data (the first byte, when not 0, is the header's length):
//! decoding never panics, and a request that decodes re-encodes to tensors of
//! the declared shape.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandscore_codec::v2::{EncodeError, decode_request_with, encode_response};

fuzz_target!(|data: &[u8]| {
    let header = data.first().map(|&b| usize::from(b)).filter(|&n| n > 0);
    let body = data.get(1..).unwrap_or_default();
    if let Ok(req) = decode_request_with(body, header) {
        for input in &req.inputs {
            assert!(input.tensor.validate().is_ok(), "decoded tensor is well formed");
        }
        let encoded = encode_response(
            "m",
            Some("1"),
            req.id.as_deref(),
            &req.inputs,
            None,
            req.binary_outputs,
            1 << 24,
        );
        match encoded {
            Ok(e) => {
                let json = &e.body[..e.header_len.unwrap_or(e.body.len())];
                let _: serde_json::Value = serde_json::from_slice(json).expect("valid JSON");
            }
            Err(e) => assert!(matches!(e, EncodeError::TooLarge(_)), "{e}"),
        }
    }
});
