//! Any string as a `GET /score` query: always an object, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandscore_codec::query::query_to_json;

fuzz_target!(|data: &[u8]| {
    if let Ok(q) = std::str::from_utf8(data) {
        assert!(query_to_json(q).is_object());
    }
});
