//! Talking to a running endpoint over HTTP: what every target's readiness
//! wait and the endpoint handle share.

use std::time::Duration;

use serde_json::Value;

use crate::SdkError;

pub(crate) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

pub(crate) fn post(url: &str, body: &Value) -> Result<Value, SdkError> {
    let text = post_bytes(url, body.to_string().as_bytes())?;
    serde_json::from_str(&text)
        .map_err(|e| SdkError::Http(format!("POST {url}: not JSON ({e}): {text}")))
}

/// POSTs a JSON body as it is and returns the answer's text as the server
/// sent it (no number reprinted).
pub(crate) fn post_bytes(url: &str, body: &[u8]) -> Result<String, SdkError> {
    let mut r = agent()
        .post(url)
        .header("content-type", "application/json")
        .send(body)
        .map_err(|e| SdkError::Http(format!("POST {url}: {e}")))?;
    let status = r.status().as_u16();
    let text = r
        .body_mut()
        .read_to_string()
        .map_err(|e| SdkError::Http(e.to_string()))?;
    if status != 200 {
        return Err(SdkError::Http(format!(
            "POST {url} answered {status}: {text}"
        )));
    }
    Ok(text)
}

/// Whether `{url}/v2/health/ready` answers 200.
pub(crate) fn ready(url: &str) -> bool {
    agent()
        .get(format!("{url}/v2/health/ready"))
        .call()
        .map(|r| r.status() == 200)
        .unwrap_or(false)
}
