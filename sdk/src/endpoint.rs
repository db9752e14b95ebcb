//! A deployed endpoint: score, infer, health, and through its target, logs,
//! state and delete.

use serde_json::Value;

use crate::SdkError;
use crate::http::{post, post_bytes, ready};
use crate::store::{self, Record};
use crate::target;

/// A handle on a deployed endpoint.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// What is known of it.
    pub record: Record,
}

impl Endpoint {
    /// The endpoint deployed as `name`.
    pub fn get(name: &str) -> Result<Endpoint, SdkError> {
        Ok(Endpoint {
            record: store::load(name)?,
        })
    }

    /// `POST /score` with a JSON body.
    pub fn score(&self, body: &Value) -> Result<Value, SdkError> {
        post(&format!("{}/score", self.record.url), body)
    }

    /// `POST /v2/models/{model}/infer` with a V2 request body.
    pub fn infer(&self, model: &str, body: &Value) -> Result<Value, SdkError> {
        post(
            &format!("{}/v2/models/{model}/infer", self.record.url),
            body,
        )
    }

    /// Sends a JSON body as it is to `/score`, or to `model`'s V2 infer,
    /// and returns the answer's text exactly as the server sent it.
    pub fn send(&self, model: Option<&str>, body: &[u8]) -> Result<String, SdkError> {
        let url = match model {
            Some(m) => format!("{}/v2/models/{m}/infer", self.record.url),
            None => format!("{}/score", self.record.url),
        };
        post_bytes(&url, body)
    }

    /// Whether `/v2/health/ready` answers 200.
    pub fn health(&self) -> bool {
        ready(&self.record.url)
    }

    /// The server's output so far.
    pub fn logs(&self) -> Result<String, SdkError> {
        target::of(&self.record.placement).logs(&self.record)
    }

    /// `running` or `stopped` for a process or container; `applied` or
    /// `written` for cluster manifests.
    pub fn state(&self) -> &'static str {
        target::of(&self.record.placement).state(&self.record)
    }

    /// Stops the server (draining in-flight requests), removes its
    /// container or cluster objects, and forgets it.
    pub fn delete(self) -> Result<(), SdkError> {
        target::of(&self.record.placement).remove(&self.record)?;
        store::remove(&self.record.name)
    }
}
