//! Models a guest loads from bytes run in a worker process of their own.
//!
//! Checks in safe Rust (`sandscore-untrusted`) refuse the known ways model
//! bytes reach past a native library, but a native parser fed bytes chosen
//! by an attacker can still fault in ways no check foresees. So each
//! instance that `load`s from bytes gets one worker process (this binary's
//! `nn-worker` command) that holds those graphs: a crash there kills the
//! worker, the instance that fed it is replaced, and the server and every
//! other request go on. The worker's memory is capped (`RLIMIT_DATA`), it
//! exits when the server does (its stdin closes, or its parent changes), and
//! every call waits only until the request's deadline: past it the worker is
//! killed.
//!
//! Models the operator put in the model directory stay in-process, at full
//! speed; the price of isolation is paid only by guest-loaded models (one
//! process start at the first `load`, and a copy of each tensor over a pipe).

mod frame;
pub mod worker;

use std::ffi::OsString;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use frame::{Budget, Reply, Request, TensorHead};

use super::{BackendError, Graph, Signature, Target, TensorInfo};
use crate::tensor::{NamedTensor, Tensor};

/// How to start a worker: a program that serves [`worker::serve`] on its
/// stdin and stdout.
#[derive(Clone, Debug)]
pub struct WorkerCommand {
    /// The program (the server's own binary).
    pub program: PathBuf,
    /// Its arguments (`nn-worker` and the backend settings).
    pub args: Vec<OsString>,
    /// Its data-segment limit in bytes (heap and anonymous mappings).
    pub memory_limit: usize,
}

/// The worker of one instance, shared by the graphs it holds.
pub struct Isolated {
    conn: Mutex<Conn>,
}

struct Conn {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    /// Why the worker is gone, once it is.
    dead: Option<BackendError>,
    /// The request's deadline; no call waits past it.
    deadline: Option<Instant>,
    /// Largest outputs accepted from one compute.
    max_output_bytes: usize,
}

impl Drop for Conn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads from the worker, waiting no longer than a deadline.
struct Timed<'a> {
    out: &'a mut ChildStdout,
    deadline: Option<Instant>,
}

impl Read for Timed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let timeout = match self.deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                i32::try_from(left.as_millis().max(1)).unwrap_or(i32::MAX)
            }
        };
        let mut fd = libc::pollfd {
            fd: self.out.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut fd, 1, timeout) };
        match n {
            0 => Err(io::ErrorKind::TimedOut.into()),
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    self.read(buf)
                } else {
                    Err(e)
                }
            }
            _ => self.out.read(buf),
        }
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGKILL => "SIGKILL",
        _ => "a signal",
    }
}

impl Conn {
    /// Sends a request and reads its reply.
    fn call(
        &mut self,
        request: &Request,
        blobs: &[&[u8]],
        budget: Budget,
    ) -> Result<(Reply, Vec<Vec<u8>>), BackendError> {
        if let Some(e) = &self.dead {
            return Err(same(e));
        }
        let sent = frame::write(&mut self.stdin, request, blobs);
        let got = sent.and_then(|()| {
            frame::read(
                &mut Timed {
                    out: &mut self.stdout,
                    deadline: self.deadline,
                },
                budget,
            )
        });
        match got {
            Ok(reply) => Ok(reply),
            Err(e) => {
                let _ = self.child.kill();
                let status = self.child.wait().ok();
                let dead = if e.kind() == io::ErrorKind::TimedOut {
                    BackendError::Deadline
                } else if e.kind() == io::ErrorKind::InvalidData {
                    BackendError::Crashed(format!(
                        "the native runtime sent back more than this instance may hold ({e})"
                    ))
                } else {
                    use std::os::unix::process::ExitStatusExt;
                    let how = match status.and_then(|s| s.signal()) {
                        Some(sig) if sig != libc::SIGKILL => {
                            format!("killed by signal {sig} ({})", signal_name(sig))
                        }
                        _ => match status.and_then(|s| s.code()) {
                            Some(code) => format!("exited with status {code}"),
                            None => "stopped".into(),
                        },
                    };
                    BackendError::Crashed(format!(
                        "the native runtime crashed on a model the module loaded from bytes ({how})"
                    ))
                };
                self.dead = Some(same(&dead));
                Err(dead)
            }
        }
    }
}

/// A copy of an error (the worker's death is reported to every caller).
fn same(e: &BackendError) -> BackendError {
    match e {
        BackendError::Deadline => BackendError::Deadline,
        BackendError::Crashed(m) => BackendError::Crashed(m.clone()),
        other => BackendError::Crashed(other.to_string()),
    }
}

fn unexpected(reply: &Reply) -> BackendError {
    BackendError::Crashed(format!("the native worker answered out of turn: {reply:?}"))
}

impl Isolated {
    /// Starts a worker and waits (until `deadline`) for its backends.
    pub fn start(
        command: &WorkerCommand,
        deadline: Option<Instant>,
        max_output_bytes: usize,
    ) -> Result<Arc<Isolated>, BackendError> {
        let mut cmd = Command::new(&command.program);
        cmd.args(&command.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let limit = command.memory_limit as libc::rlim_t;
        // SAFETY: only async-signal-safe system calls between fork and exec.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(move || {
                if limit > 0 {
                    let r = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_DATA, &r) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let unavailable = |e: String| {
            BackendError::Unavailable(format!(
                "cannot start the worker process for models loaded from bytes: {e}"
            ))
        };
        let mut child = cmd.spawn().map_err(|e| unavailable(e.to_string()))?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(unavailable("its pipes are missing".into()));
        };
        forward_log(stderr, child.id());
        let mut conn = Conn {
            child,
            stdin,
            stdout,
            dead: None,
            deadline,
            max_output_bytes,
        };
        let ready = frame::read::<Reply>(
            &mut Timed {
                out: &mut conn.stdout,
                deadline,
            },
            Budget { bytes: 0 },
        );
        match ready {
            Ok((Reply::Ready, _)) => Ok(Arc::new(Isolated {
                conn: Mutex::new(conn),
            })),
            Ok((other, _)) => Err(unexpected(&other)),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(BackendError::Deadline),
            Err(e) => Err(unavailable(format!("it did not start ({e})"))),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Conn>, BackendError> {
        self.conn
            .lock()
            .map_err(|_| BackendError::Crashed("the native worker's state was poisoned".into()))
    }

    /// Sets the deadline of the calls that follow (the request's).
    pub fn set_deadline(&self, deadline: Option<Instant>) {
        if let Ok(mut c) = self.conn.lock() {
            c.deadline = deadline;
        }
    }

    /// Loads a graph with the worker's backend `backend`.
    pub fn load(
        self: &Arc<Self>,
        backend: &str,
        parts: &[&[u8]],
        target: Target,
    ) -> Result<Arc<dyn Graph>, BackendError> {
        let request = Request::Load {
            backend: backend.to_string(),
            gpu: target == Target::Gpu,
        };
        let (reply, _) = self.lock()?.call(&request, parts, Budget { bytes: 0 })?;
        match reply {
            Reply::Loaded {
                id,
                inputs,
                outputs,
                device,
            } => Ok(Arc::new(RemoteGraph {
                worker: Arc::clone(self),
                id,
                signature: Signature {
                    inputs: inputs.into_iter().map(TensorInfo::from).collect(),
                    outputs: outputs.into_iter().map(TensorInfo::from).collect(),
                },
                device,
            })),
            Reply::Failed { kind, message } => Err(kind.error(message)),
            other => Err(unexpected(&other)),
        }
    }
}

/// Logs the worker's stderr (native libraries' messages) line by line,
/// escaped, so nothing it prints can pose as another log line.
fn forward_log(stderr: std::process::ChildStderr, pid: u32) {
    let spawned = std::thread::Builder::new()
        .name("nn-worker-log".into())
        .spawn(move || {
            use std::io::BufRead;
            let mut reader = io::BufReader::new(stderr);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.by_ref().take(16 * 1024).read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&line);
                        let text = crate::escape::log_text(text.trim_end_matches('\n'));
                        tracing::info!(target: "nn-worker", pid, "{text}");
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot forward the native worker's log");
    }
}

/// A graph held by a worker process.
struct RemoteGraph {
    worker: Arc<Isolated>,
    id: u64,
    /// Its inputs and outputs.
    signature: Signature,
    device: String,
}

impl Drop for RemoteGraph {
    fn drop(&mut self) {
        if let Ok(mut c) = self.worker.conn.lock()
            && c.dead.is_none()
        {
            let _ = c.call(&Request::Drop { id: self.id }, &[], Budget { bytes: 0 });
        }
    }
}

impl Graph for RemoteGraph {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn device(&self) -> String {
        self.device.clone()
    }

    fn compute(
        &self,
        inputs: Vec<NamedTensor>,
        _deadline: Option<Instant>,
    ) -> Result<Vec<NamedTensor>, BackendError> {
        let (heads, blobs) = TensorHead::split(&inputs);
        let mut conn = self.worker.lock()?;
        let budget = Budget {
            bytes: conn.max_output_bytes,
        };
        let request = Request::Compute {
            id: self.id,
            inputs: heads,
            max_bytes: budget.bytes as u64,
        };
        let (reply, data) = conn.call(&request, &blobs, budget)?;
        drop(conn);
        match reply {
            Reply::Outputs { outputs } if outputs.len() == data.len() => outputs
                .into_iter()
                .zip(data)
                .map(|(h, d)| {
                    let tensor = Tensor::new(h.shape, h.ty, d).map_err(|e| {
                        BackendError::Crashed(format!("the native worker sent a bad output: {e}"))
                    })?;
                    Ok(NamedTensor {
                        name: h.name,
                        tensor,
                    })
                })
                .collect(),
            Reply::Failed { kind, message } => Err(kind.error(message)),
            other => Err(unexpected(&other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A worker that says it is ready, reads one byte of the request, then
    /// does what `then` says: a real process, really dying or hanging.
    fn worker(then: &str) -> WorkerCommand {
        WorkerCommand {
            program: "/bin/sh".into(),
            args: vec![
                "-c".into(),
                format!(r#"printf '\007\000\000\000"Ready"\000\000\000\000'; head -c 1 >/dev/null; {then}"#)
                    .into(),
            ],
            memory_limit: 0,
        }
    }

    #[test]
    fn a_worker_killed_by_a_signal_is_reported_and_stays_dead() {
        let w = Isolated::start(&worker("kill -SEGV $$"), None, 1 << 20).expect("ready");
        let e = w
            .load("onnxruntime", &[b"model"], Target::Cpu)
            .err()
            .expect("crashed");
        assert!(
            matches!(&e, BackendError::Crashed(m) if m.contains("signal 11 (SIGSEGV)")),
            "{e}"
        );
        let again = w
            .load("onnxruntime", &[b"model"], Target::Cpu)
            .err()
            .expect("dead");
        assert!(matches!(again, BackendError::Crashed(_)), "{again}");
    }

    #[test]
    fn a_worker_past_the_deadline_is_killed_in_time() {
        let w = Isolated::start(&worker("sleep 600"), None, 1 << 20).expect("ready");
        w.set_deadline(Instant::now().checked_add(Duration::from_millis(300)));
        let started = Instant::now();
        let e = w
            .load("onnxruntime", &[b"model"], Target::Cpu)
            .err()
            .expect("stopped");
        assert!(matches!(e, BackendError::Deadline), "{e}");
        assert!(started.elapsed() < Duration::from_secs(30));
        let pid = w.lock().expect("conn").child.id();
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists()
                || std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.is_empty()),
            "the worker was killed and reaped"
        );
    }

    #[test]
    fn a_worker_that_never_starts_is_unavailable() {
        let e = Isolated::start(&worker("true").clone_with_program("/nonexistent"), None, 0)
            .err()
            .expect("no worker");
        assert!(matches!(e, BackendError::Unavailable(_)), "{e}");
    }

    impl WorkerCommand {
        fn clone_with_program(&self, program: &str) -> WorkerCommand {
            WorkerCommand {
                program: program.into(),
                ..self.clone()
            }
        }
    }
}
