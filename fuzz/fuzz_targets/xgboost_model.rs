//! Any bytes as an XGBoost booster handed to wasi-nn `load`: the check never
//! panics (every index it reads is checked first).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sandscore_untrusted::xgboost::check(data);
});
