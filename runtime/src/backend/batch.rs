//! Dynamic batching, Triton's way: a [`Graph`] in front of a model's own
//! that stacks the requests arriving within a short delay along the batch
//! dimension into one backend call, and splits the outputs back. Because it
//! is a graph, every caller is batched alike: V2 REST and gRPC requests, and
//! wasi-nn `compute` (or a Python script's `run`) from different sandboxed
//! instances on the same named model.
//!
//! What a hostile caller could do, and what bounds it: a request is checked
//! before it queues (a batch dimension, the same size in every input, at
//! most `max_batch_size` rows), so a malformed one is refused alone; the
//! queue is bounded, and a full one refuses at once; a request whose
//! deadline passes while it waits is answered without running, and a batch
//! runs until the earliest deadline among its requests; only requests with
//! the same input names, types and non-batch dimensions share a batch, and
//! when a batch fails for any reason but its deadline, each of its requests
//! runs again alone, so one request can never fail another's answer.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{BackendError, Graph, Signature, fenced};
use crate::tensor::{NamedTensor, Tensor, TensorType};

/// The most rows one batch may hold, whatever a configuration says.
pub const MAX_BATCH_SIZE: usize = 1024;

/// Batches that run at once when a configuration does not say: one per
/// CPU this process may use, at most 4 (each backend call uses one intra-op
/// thread by default).
fn default_instances() -> usize {
    crate::blocking::cpus(4)
}

/// How a model batches.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchSettings {
    /// The most rows one backend call gets (Triton's `max_batch_size`).
    pub max_batch_size: usize,
    /// How long the first request of a batch waits for more
    /// (`max_queue_delay_microseconds`).
    pub delay: Duration,
    /// Row counts at which a batch runs at once (`preferred_batch_size`).
    pub preferred: Vec<usize>,
    /// Requests that may wait; more are refused (`max_queue_size`, else
    /// 16 batches' worth).
    pub max_queue: usize,
    /// Batches that run at once (the model's `instance_group` count, else
    /// one per CPU, at most 4).
    pub instances: usize,
}

impl BatchSettings {
    /// From a model's `config.pbtxt`: `None` unless it has `max_batch_size`
    /// above 0 and a `dynamic_batching` block.
    pub fn from_config(c: &crate::proto::ModelConfig) -> Option<BatchSettings> {
        let Some(crate::proto::model_config::SchedulingChoice::DynamicBatching(d)) =
            c.scheduling_choice.as_ref()
        else {
            return None;
        };
        let max = usize::try_from(c.max_batch_size).ok().filter(|m| *m > 0)?;
        let max = max.min(MAX_BATCH_SIZE);
        let queue = d
            .default_queue_policy
            .as_ref()
            .and_then(|p| usize::try_from(p.max_queue_size).ok())
            .filter(|q| *q > 0);
        let instances: i32 = c.instance_group.iter().map(|g| g.count.max(1)).sum();
        let instances = if instances == 0 {
            default_instances()
        } else {
            usize::try_from(instances).unwrap_or(1)
        };
        Some(BatchSettings {
            max_batch_size: max,
            delay: Duration::from_micros(d.max_queue_delay_microseconds.min(1_000_000)),
            preferred: d
                .preferred_batch_size
                .iter()
                .filter_map(|p| usize::try_from(*p).ok())
                .filter(|p| *p > 0 && *p <= max)
                .collect(),
            max_queue: queue.unwrap_or(16 * max),
            instances: instances.clamp(1, 16),
        })
    }

    /// From `--dynamic-batching NAME=MAX[/DELAY_US]`'s value part (the
    /// delay 500 µs unless given).
    pub fn parse(value: &str) -> Result<BatchSettings, String> {
        let (max, delay) = value.split_once('/').unwrap_or((value, "500"));
        let max: usize = max
            .trim()
            .parse()
            .ok()
            .filter(|m| (1..=MAX_BATCH_SIZE).contains(m))
            .ok_or_else(|| format!("'{max}' is not a batch size from 1 to {MAX_BATCH_SIZE}"))?;
        let delay: u64 = delay
            .trim()
            .parse()
            .ok()
            .filter(|d| *d <= 1_000_000)
            .ok_or_else(|| format!("'{delay}' is not a delay from 0 to 1000000 µs"))?;
        Ok(BatchSettings {
            max_batch_size: max,
            delay: Duration::from_micros(delay),
            preferred: Vec::new(),
            max_queue: 16 * max,
            instances: default_instances(),
        })
    }
}

/// What a batch answers: its outputs, or why not.
type Outcome = Result<Vec<NamedTensor>, BackendError>;

/// Where a job's answer goes: a thread blocked in `compute` (wasi-nn
/// guests, scripts), or an async handler awaiting it (V2, gRPC).
enum Answer {
    Blocking(SyncSender<Outcome>),
    Async(tokio::sync::oneshot::Sender<Outcome>),
}

impl Answer {
    fn send(self, r: Outcome) {
        // A caller that gave up is not waiting: nothing to tell.
        match self {
            Answer::Blocking(s) => drop(s.try_send(r)),
            Answer::Async(s) => drop(s.send(r)),
        }
    }
}

/// One request waiting for a batch.
struct Job {
    inputs: Vec<NamedTensor>,
    rows: usize,
    deadline: Option<Instant>,
    answer: Answer,
}

impl Job {
    /// Whether `other` may share a batch with this job: the same input
    /// names, types and dimensions after the first (inputs are sorted).
    fn fits(&self, other: &Job) -> bool {
        self.inputs.len() == other.inputs.len()
            && self.inputs.iter().zip(&other.inputs).all(|(a, b)| {
                a.name == b.name
                    && a.tensor.ty == b.tensor.ty
                    && a.tensor.shape.get(1..) == b.tensor.shape.get(1..)
            })
    }

    fn reply(self, r: Outcome) {
        self.answer.send(r);
    }
}

/// What the batching threads share.
struct Queue {
    jobs: Mutex<Receiver<Job>>,
    /// A job that did not fit the last batch: the next batch starts with it.
    carried: Mutex<Option<Job>>,
}

/// A graph whose computes are batched.
pub struct Batched {
    name: String,
    inner: Arc<dyn Graph>,
    settings: BatchSettings,
    jobs: SyncSender<Job>,
}

impl Batched {
    /// Batches `inner` (the model `name`) with `settings`: starts its
    /// batching threads, which end when this graph is dropped.
    pub fn new(
        name: &str,
        inner: Arc<dyn Graph>,
        settings: BatchSettings,
    ) -> Result<Batched, BackendError> {
        let (jobs, receiver) = sync_channel(settings.max_queue.max(1));
        let queue = Arc::new(Queue {
            jobs: Mutex::new(receiver),
            carried: Mutex::new(None),
        });
        for i in 0..settings.instances {
            let (queue, inner, settings, model) = (
                Arc::clone(&queue),
                Arc::clone(&inner),
                settings.clone(),
                name.to_string(),
            );
            std::thread::Builder::new()
                .name(format!("batch-{name}-{i}"))
                .spawn(move || batching(&queue, inner.as_ref(), &settings, &model))
                .map_err(|e| {
                    BackendError::Unavailable(format!("cannot start batching for '{name}': {e}"))
                })?;
        }
        tracing::info!(
            model = name,
            max_batch_size = settings.max_batch_size,
            delay_us = settings.delay.as_micros() as u64,
            instances = settings.instances,
            "dynamic batching"
        );
        Ok(Batched {
            name: name.to_string(),
            inner,
            settings,
            jobs,
        })
    }

    /// The rows of `inputs` (their shared first dimension), checked.
    fn rows(&self, inputs: &[NamedTensor]) -> Result<usize, BackendError> {
        let max = self.settings.max_batch_size;
        let mut rows = None;
        for input in inputs {
            input
                .tensor
                .validate()
                .map_err(|e| BackendError::InvalidInput(format!("input '{}': {e}", input.name)))?;
            let Some(&n) = input.tensor.shape.first() else {
                return Err(BackendError::InvalidInput(format!(
                    "input '{}' has no batch dimension: '{}' batches requests along the first dimension (max_batch_size {max})",
                    input.name, self.name
                )));
            };
            let n = n as usize;
            if n == 0 || n > max {
                return Err(BackendError::InvalidInput(format!(
                    "input '{}' has {n} rows; '{}' takes 1 to {max} per request (max_batch_size)",
                    input.name, self.name
                )));
            }
            match rows {
                Some(r) if r != n => {
                    return Err(BackendError::InvalidInput(format!(
                        "inputs disagree on the batch size ({r} and {n} rows)"
                    )));
                }
                _ => rows = Some(n),
            }
        }
        rows.ok_or_else(|| BackendError::InvalidInput("no inputs".into()))
    }
}

impl Graph for Batched {
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn device(&self) -> String {
        self.inner.device()
    }

    fn compute(&self, inputs: Vec<NamedTensor>, deadline: Option<Instant>) -> Outcome {
        let (answer, reply) = sync_channel(1);
        self.enqueue(inputs, deadline, Answer::Blocking(answer))?;
        // The batch runs no later than this request's deadline allows, so
        // the wait is bounded by it (and by a batch's own run otherwise).
        match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now()) + GRACE;
                reply
                    .recv_timeout(left)
                    .unwrap_or(Err(BackendError::Deadline))
            }
            None => reply.recv().unwrap_or_else(|_| Err(dropped())),
        }
    }

    fn batched(&self) -> Option<&Batched> {
        Some(self)
    }
}

/// How long past its deadline a caller waits for a batch that is running.
const GRACE: Duration = Duration::from_secs(1);

fn dropped() -> BackendError {
    BackendError::Runtime("the batch was dropped".into())
}

impl Batched {
    /// [`Graph::compute`] for an async caller: waits without holding a
    /// thread.
    pub async fn compute_async(&self, inputs: Vec<NamedTensor>, deadline: Instant) -> Outcome {
        let (answer, reply) = tokio::sync::oneshot::channel();
        self.enqueue(inputs, Some(deadline), Answer::Async(answer))?;
        let until = tokio::time::Instant::from_std(deadline + GRACE);
        match tokio::time::timeout_at(until, reply).await {
            Ok(Ok(out)) => out,
            Ok(Err(_)) => Err(dropped()),
            Err(_) => Err(BackendError::Deadline),
        }
    }

    /// Checks `inputs` and queues them, refusing at once when the queue is
    /// full.
    fn enqueue(
        &self,
        mut inputs: Vec<NamedTensor>,
        deadline: Option<Instant>,
        answer: Answer,
    ) -> Result<(), BackendError> {
        let rows = self.rows(&inputs)?;
        inputs.sort_by(|a, b| a.name.cmp(&b.name));
        let job = Job {
            inputs,
            rows,
            deadline,
            answer,
        };
        match self.jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(BackendError::Overloaded(format!(
                "'{}' has {} requests waiting for a batch, its queue's limit; try again shortly",
                self.name, self.settings.max_queue
            ))),
            Err(TrySendError::Disconnected(_)) => Err(BackendError::Runtime(format!(
                "'{}' stopped batching",
                self.name
            ))),
        }
    }
}

/// One batching thread: takes the first waiting job, gathers more for up
/// to the delay, runs the batch, and again, until the graph is dropped.
fn batching(queue: &Queue, inner: &dyn Graph, s: &BatchSettings, model: &str) {
    loop {
        let batch = {
            let jobs = queue.jobs.lock().unwrap_or_else(PoisonError::into_inner);
            let carried = queue
                .carried
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            let first = match carried {
                Some(job) => job,
                None => match jobs.recv() {
                    Ok(job) => job,
                    // The graph is gone: so is this thread.
                    Err(_) => return,
                },
            };
            gather(&jobs, &queue.carried, first, s)
        };
        run(inner, batch, model);
    }
}

/// The batch that starts with `first`: jobs that fit it arriving within the
/// delay, until it holds `max_batch_size` rows or a preferred size.
fn gather(
    jobs: &Receiver<Job>,
    carried: &Mutex<Option<Job>>,
    first: Job,
    s: &BatchSettings,
) -> Vec<Job> {
    // Never held past the earliest deadline among the batch's requests.
    let mut until = Instant::now() + s.delay;
    if let Some(d) = first.deadline {
        until = until.min(d);
    }
    let mut rows = first.rows;
    let mut batch = vec![first];
    while rows < s.max_batch_size && !s.preferred.contains(&rows) {
        let left = until.saturating_duration_since(Instant::now());
        let job = if left.is_zero() {
            jobs.try_recv().map_err(|_| RecvTimeoutError::Timeout)
        } else {
            jobs.recv_timeout(left)
        };
        match job {
            Ok(job) if batch[0].fits(&job) && rows + job.rows <= s.max_batch_size => {
                if let Some(d) = job.deadline {
                    until = until.min(d);
                }
                rows += job.rows;
                batch.push(job);
            }
            Ok(job) => {
                *carried.lock().unwrap_or_else(PoisonError::into_inner) = Some(job);
                break;
            }
            Err(_) => break,
        }
    }
    batch
}

/// Runs a batch: stacked when it holds several live jobs, each job alone
/// again when the stacked call fails for any reason but its deadline.
fn run(inner: &dyn Graph, batch: Vec<Job>, model: &str) {
    let now = Instant::now();
    let (live, late): (Vec<Job>, Vec<Job>) = batch
        .into_iter()
        .partition(|j| j.deadline.is_none_or(|d| d > now));
    for job in late {
        job.reply(Err(BackendError::Deadline));
    }
    if live.is_empty() {
        return;
    }
    let deadline = live.iter().filter_map(|j| j.deadline).min();
    let rows: usize = live.iter().map(|j| j.rows).sum();
    let started = Instant::now();
    crate::metrics::metrics().observe_batch(model, rows);
    if let [_] = live.as_slice() {
        for Job { inputs, answer, .. } in live {
            let out = fenced(|| inner.compute(inputs, deadline));
            crate::metrics::metrics().batch_ran(model, rows, started.elapsed());
            answer.send(out);
        }
        return;
    }
    let out = stack(&live, rows).and_then(|inputs| fenced(|| inner.compute(inputs, deadline)));
    crate::metrics::metrics().batch_ran(model, rows, started.elapsed());
    match out.and_then(|outputs| split(outputs, &live, rows)) {
        Ok(parts) => {
            for (job, part) in live.into_iter().zip(parts) {
                job.reply(Ok(part));
            }
        }
        Err(BackendError::Deadline) => {
            for job in live {
                job.reply(Err(BackendError::Deadline));
            }
        }
        Err(e) => {
            tracing::debug!(model, error = %e, "a batch failed; running its requests one by one");
            for job in live {
                let out = fenced(|| inner.compute(job.inputs.clone(), job.deadline));
                job.reply(out);
            }
        }
    }
}

/// The jobs' inputs stacked along the first dimension, input by input.
fn stack(jobs: &[Job], rows: usize) -> Result<Vec<NamedTensor>, BackendError> {
    let first = &jobs[0];
    let mut stacked = Vec::with_capacity(first.inputs.len());
    for (i, input) in first.inputs.iter().enumerate() {
        let bytes: usize = jobs.iter().map(|j| j.inputs[i].tensor.data.len()).sum();
        let mut data = Vec::with_capacity(bytes);
        for j in jobs {
            data.extend_from_slice(&j.inputs[i].tensor.data);
        }
        let mut shape = input.tensor.shape.clone();
        shape[0] =
            u32::try_from(rows).map_err(|_| BackendError::InvalidInput("too many rows".into()))?;
        let tensor = Tensor::new(shape, input.tensor.ty, data)
            .map_err(|e| BackendError::InvalidInput(e.to_string()))?;
        stacked.push(NamedTensor {
            name: input.name.clone(),
            tensor,
        });
    }
    Ok(stacked)
}

/// Each job's share of every output: its rows of the first dimension.
fn split(
    outputs: Vec<NamedTensor>,
    jobs: &[Job],
    rows: usize,
) -> Result<Vec<Vec<NamedTensor>>, BackendError> {
    let mut parts: Vec<Vec<NamedTensor>> = jobs.iter().map(|_| Vec::new()).collect();
    for o in outputs {
        if o.tensor.shape.first().map(|&n| n as usize) != Some(rows) {
            return Err(BackendError::Unsupported(format!(
                "output '{}' has shape {:?}, not {rows} rows first: the model does not batch along its first dimension (remove dynamic_batching)",
                o.name, o.tensor.shape
            )));
        }
        let pieces = row_ranges(&o.tensor, rows)?;
        let mut at = 0;
        for (part, job) in parts.iter_mut().zip(jobs) {
            let (start, end) = (pieces[at], pieces[at + job.rows]);
            at += job.rows;
            let mut shape = o.tensor.shape.clone();
            shape[0] = job.rows as u32;
            let tensor = Tensor::new(shape, o.tensor.ty, o.tensor.data[start..end].to_vec())
                .map_err(|e| BackendError::Runtime(e.to_string()))?;
            part.push(NamedTensor {
                name: o.name.clone(),
                tensor,
            });
        }
    }
    Ok(parts)
}

/// Byte offsets of each row's start in `t`, and of its end (`rows + 1`).
fn row_ranges(t: &Tensor, rows: usize) -> Result<Vec<usize>, BackendError> {
    let bad = || BackendError::Runtime("an output's data does not match its shape".into());
    match t.ty.size() {
        Some(_) => {
            let per = t.data.len() / rows.max(1);
            if per * rows != t.data.len() {
                return Err(bad());
            }
            Ok((0..=rows).map(|r| r * per).collect())
        }
        None => {
            // BYTES: each element a 4-byte length and its bytes.
            debug_assert_eq!(t.ty, TensorType::Bytes);
            let per_row: usize = t.shape[1..].iter().map(|&d| d as usize).product();
            if per_row == 0 {
                return Ok(vec![0; rows + 1]);
            }
            let elements = crate::tensor::bytes_elements(&t.data).ok_or_else(bad)?;
            if elements.len() != per_row * rows {
                return Err(bad());
            }
            let mut offsets = vec![0];
            let mut at = 0;
            for row in elements.chunks(per_row) {
                at += row.iter().map(|e| 4 + e.len()).sum::<usize>();
                offsets.push(at);
            }
            Ok(offsets)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_tensor(rows: u32, per_row: u32, elements: &[&[u8]]) -> Tensor {
        let mut data = Vec::new();
        for e in elements {
            crate::tensor::push_bytes_element(&mut data, e).expect("element");
        }
        Tensor::new(vec![rows, per_row], TensorType::Bytes, data).expect("tensor")
    }

    #[test]
    fn rows_split_where_they_end() {
        let f = Tensor::new(vec![3, 2], TensorType::Fp32, vec![0; 24]).expect("tensor");
        assert_eq!(row_ranges(&f, 3).expect("fixed"), [0, 8, 16, 24]);
        // BYTES rows of two elements: 4 + len bytes each.
        let b = bytes_tensor(2, 2, &[b"a", b"bc", b"", b"def"]);
        assert_eq!(row_ranges(&b, 2).expect("bytes"), [0, 11, 22]);
        // Data that does not fill the rows (a backend's bad output) is refused.
        let mut short = bytes_tensor(2, 2, &[b"a", b"bc", b"", b"def"]);
        short.data.truncate(11);
        assert!(row_ranges(&short, 2).is_err());
    }

    #[test]
    fn settings_come_from_the_flag_within_bounds() {
        let s = BatchSettings::parse("32/250").expect("settings");
        assert_eq!(
            (s.max_batch_size, s.delay),
            (32, Duration::from_micros(250))
        );
        assert_eq!(
            BatchSettings::parse("8").expect("settings").delay,
            Duration::from_micros(500)
        );
        for bad in ["0", "2000", "8/2000000", "x"] {
            assert!(BatchSettings::parse(bad).is_err(), "{bad}");
        }
    }
}
