//! Wire formats in and out: Open Inference Protocol V2 JSON tensors, and
//! Azure ML's `GET /score` query strings. Pure functions over bytes and
//! [`crate::tensor`] values, so they are fuzzed and unit-tested without a
//! server.

pub mod query;
pub mod v2;
