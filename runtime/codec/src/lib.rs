//! Wire formats in and out: Open Inference Protocol V2 JSON tensors, and
//! Azure ML's `GET /score` query strings, over the [`tensor`] value every
//! layer of sandscore speaks. Pure functions over bytes, kept in a crate of
//! their own so they are fuzzed (`fuzz/`) and unit-tested without a server.

pub mod query;
pub mod tensor;
pub mod v2;
