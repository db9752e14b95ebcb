//! One ONNX model: a small pool of sessions (ORT's `Run` is not safe to call
//! concurrently on one session through `ort`), and runs stopped at their
//! deadline by the terminate flag.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use ort::session::Session;
use ort::value::DynValue;

use super::values::{describe, from_value, to_value};
use super::watchdog::Watchdog;
use super::{Device, Loaded, Source};
use crate::backend::{BackendError, Graph, Signature, check_inputs};
use crate::tensor::NamedTensor;

struct PoolState {
    sessions: Vec<Session>,
    created: usize,
}

/// Sessions of one graph; a run takes one, creating it if the pool is not
/// yet at its size, or waits for one to come back.
struct SessionPool {
    idle: Mutex<PoolState>,
    returned: Condvar,
    max: usize,
}

pub(super) struct OrtGraph {
    /// Used to create further sessions of this graph.
    loaded: Arc<Loaded>,
    source: Source,
    /// Where this graph's sessions run (after any fallback).
    device: Device,
    /// Its inputs and outputs.
    signature: Signature,
    pool: SessionPool,
}

impl OrtGraph {
    /// A graph whose first session is `first`, growing to `max` sessions.
    pub(super) fn new(
        loaded: Arc<Loaded>,
        source: Source,
        device: Device,
        first: Session,
        max: usize,
    ) -> Self {
        let inputs = first
            .inputs()
            .iter()
            .map(|o| describe(o.name(), o.dtype()))
            .collect();
        let outputs = first
            .outputs()
            .iter()
            .map(|o| describe(o.name(), o.dtype()))
            .collect();
        OrtGraph {
            loaded,
            source,
            device,
            signature: Signature { inputs, outputs },
            pool: SessionPool {
                idle: Mutex::new(PoolState {
                    sessions: vec![first],
                    created: 1,
                }),
                returned: Condvar::new(),
                max: max.max(1),
            },
        }
    }

    fn take_session(&self) -> Result<Session, BackendError> {
        let poisoned = |_| BackendError::Runtime("session pool lock poisoned".into());
        let mut state = self.pool.idle.lock().map_err(poisoned)?;
        loop {
            if let Some(s) = state.sessions.pop() {
                return Ok(s);
            }
            if state.created < self.pool.max {
                state.created += 1;
                drop(state);
                let made = self.loaded.new_session(&self.source, self.device);
                if made.is_err()
                    && let Ok(mut st) = self.pool.idle.lock()
                {
                    st.created -= 1;
                }
                return made;
            }
            state = self.pool.returned.wait(state).map_err(poisoned)?;
        }
    }

    fn give_back(&self, session: Session) {
        if let Ok(mut state) = self.pool.idle.lock() {
            state.sessions.push(session);
        }
        self.pool.returned.notify_one();
    }

    fn run(
        &self,
        inputs: Vec<NamedTensor>,
        deadline: Option<Instant>,
    ) -> Result<Vec<NamedTensor>, BackendError> {
        check_inputs(&self.signature.inputs, &inputs)?;
        let values = inputs
            .into_iter()
            .map(|i| {
                let value = to_value(&i.name, i.tensor)?;
                Ok((i.name, value))
            })
            .collect::<Result<Vec<(String, DynValue)>, BackendError>>()?;
        let mut session = self.take_session()?;
        let result = run_session(&mut session, values, deadline);
        self.give_back(session);
        result
    }
}

fn run_session(
    session: &mut Session,
    values: Vec<(String, DynValue)>,
    deadline: Option<Instant>,
) -> Result<Vec<NamedTensor>, BackendError> {
    let watchdog = deadline.map(Watchdog::arm).transpose()?;
    let outputs = match &watchdog {
        Some(w) => session.run_with_options(values, &*w.options),
        None => session.run(values),
    };
    let outputs = outputs.map_err(|e| match &watchdog {
        Some(w) if w.fired() => BackendError::Deadline,
        _ => BackendError::Runtime(e.to_string()),
    })?;
    outputs
        .into_iter()
        .map(|(name, value)| {
            Ok(NamedTensor {
                name: name.to_string(),
                tensor: from_value(name, &value)?,
            })
        })
        .collect()
}

impl Graph for OrtGraph {
    fn stops_at_deadline(&self) -> bool {
        true
    }

    fn device(&self) -> String {
        match self.device {
            Device::Cpu => "cpu".into(),
            Device::Cuda(id) => format!("cuda:{id}"),
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn compute(
        &self,
        inputs: Vec<NamedTensor>,
        deadline: Option<Instant>,
    ) -> Result<Vec<NamedTensor>, BackendError> {
        self.run(inputs, deadline)
    }
}
