//! Any bytes as a V2 inference request body: decoding never panics, and a
//! request that decodes re-encodes to tensors of the declared shape.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandscore_codec::v2::{decode_request, encode_response};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = decode_request(data) {
        for input in &req.inputs {
            assert!(input.tensor.validate().is_ok(), "decoded tensor is well formed");
        }
        match encode_response("m", Some("1"), req.id.as_deref(), &req.inputs, None, 1 << 24) {
            Ok(body) => {
                let _: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
            }
            Err(e) => assert!(matches!(e, sandscore_codec::v2::EncodeError::TooLarge(_)), "{e}"),
        }
    }
});
