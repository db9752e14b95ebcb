//! The module's stdout and stderr, captured line by line into the host's
//! log, each line tagged with the id of the request that printed it.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Longest line kept; a longer one is logged in pieces.
const MAX_LINE: usize = 16 * 1024;

/// The id of the request an instance is serving, shared with its streams.
#[derive(Clone, Default)]
pub struct RequestTag(Arc<Mutex<String>>);

impl RequestTag {
    /// Sets the current request id (empty between requests).
    pub fn set(&self, id: &str) {
        if let Ok(mut s) = self.0.lock() {
            s.clear();
            s.push_str(id);
        }
    }

    /// The current request id.
    pub fn get(&self) -> String {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

struct Buffer {
    line: Vec<u8>,
}

/// One of the module's output streams.
#[derive(Clone)]
pub struct GuestOutput {
    stream: &'static str,
    tag: RequestTag,
    buffer: Arc<Mutex<Buffer>>,
}

impl GuestOutput {
    /// A stream named `stream` ("stdout" or "stderr").
    pub fn new(stream: &'static str, tag: RequestTag) -> Self {
        GuestOutput {
            stream,
            tag,
            buffer: Arc::new(Mutex::new(Buffer { line: Vec::new() })),
        }
    }

    fn emit(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = crate::escape::log_text(text.trim_end_matches('\r'));
        tracing::info!(target: "guest", request_id = %self.tag.get(), stream = self.stream, "{text}");
    }

    fn take(&self, bytes: &[u8]) {
        let Ok(mut buf) = self.buffer.lock() else {
            return;
        };
        for &b in bytes {
            if b == b'\n' {
                let line = std::mem::take(&mut buf.line);
                self.emit(&line);
            } else {
                buf.line.push(b);
                if buf.line.len() >= MAX_LINE {
                    let line = std::mem::take(&mut buf.line);
                    self.emit(&line);
                }
            }
        }
    }

    /// Logs a partial last line (called when a request ends).
    pub fn flush_partial(&self) {
        let line = match self.buffer.lock() {
            Ok(mut buf) if !buf.line.is_empty() => std::mem::take(&mut buf.line),
            _ => return,
        };
        self.emit(&line);
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.take(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.take(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
