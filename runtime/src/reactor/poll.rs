//! WASI preview 1's one blocking wait, `poll_oneoff` (under `time.sleep`
//! and `select`), bounded by the request's deadline: wasmtime's own blocks
//! the thread for as long as the guest asks, and epoch interruption cannot
//! reach a thread blocked in the host.
//!
//! The interpreter has nothing that blocks but clocks: its files are
//! always ready, stdin is empty, it has no sockets. So a subscription on a
//! descriptor is reported ready at once, and a clock is slept on up to the
//! deadline, where it traps as the epoch would (a 504). The
//! guest's monotonic clock is [`GuestClock`], so absolute times (CPython
//! sleeps until one) are read on the clock the guest read them from.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wasmtime::{Caller, Extern, Linker};

use super::State;

const SUBSCRIPTION: usize = 48;
const EVENT: usize = 32;
const ERRNO_INVAL: i32 = 28;
const ERRNO_FAULT: i32 = 21;
/// `subclockflags.abstime`.
const ABSTIME: u16 = 1;
/// Most subscriptions one call may hold.
const MAX_SUBSCRIPTIONS: usize = 1024;

/// The guest's monotonic clock: nanoseconds since its store was made.
#[derive(Clone, Copy)]
pub struct GuestClock(pub Instant);

impl wasmtime_wasi::HostMonotonicClock for GuestClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

/// Replaces `wasi_snapshot_preview1::poll_oneoff` in `linker`.
pub fn shadow(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.func_wrap(
        "wasi_snapshot_preview1",
        "poll_oneoff",
        |mut caller: Caller<'_, State>, input: i32, output: i32, n: i32, nevents: i32| {
            poll_oneoff(
                &mut caller,
                input as u32,
                output as u32,
                n as u32,
                nevents as u32,
            )
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

fn poll_oneoff(
    caller: &mut Caller<'_, State>,
    input: u32,
    output: u32,
    n: u32,
    nevents: u32,
) -> wasmtime::Result<i32> {
    let n = n as usize;
    if n == 0 || n > MAX_SUBSCRIPTIONS {
        return Ok(ERRNO_INVAL);
    }
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        return Ok(ERRNO_FAULT);
    };
    let mut subs = vec![0u8; n * SUBSCRIPTION];
    if memory
        .read(&mut *caller, input as usize, &mut subs)
        .is_err()
    {
        return Ok(ERRNO_FAULT);
    }
    let u64_at =
        |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default());
    let clock = caller.data().clock;
    // Descriptors are ready now; otherwise the nearest clock fires.
    let mut events = Vec::new();
    let mut nearest: Option<(Duration, u64)> = None;
    for s in subs.chunks_exact(SUBSCRIPTION) {
        let userdata = u64_at(s, 0);
        match s[8] {
            0 => {
                let id = u32::from_le_bytes([s[16], s[17], s[18], s[19]]);
                let timeout = u64_at(s, 24);
                let flags = u16::from_le_bytes([s[40], s[41]]);
                let now = match id {
                    0 => SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos() as u64),
                    // Monotonic, and the CPU-time clocks read as it.
                    1..=3 => clock.0.elapsed().as_nanos() as u64,
                    _ => return Ok(ERRNO_INVAL),
                };
                let wait = if flags & ABSTIME != 0 {
                    Duration::from_nanos(timeout.saturating_sub(now))
                } else {
                    Duration::from_nanos(timeout)
                };
                if nearest.is_none_or(|(d, _)| wait < d) {
                    nearest = Some((wait, userdata));
                }
            }
            kind @ (1 | 2) => events.push(event(userdata, kind, 0)),
            _ => return Ok(ERRNO_INVAL),
        }
    }
    if events.is_empty() {
        let Some((wait, userdata)) = nearest else {
            return Ok(ERRNO_INVAL);
        };
        let wanted = Instant::now() + wait;
        let deadline = caller.data().door.deadline();
        let until = deadline.map_or(wanted, |d| wanted.min(d));
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
        if deadline.is_some_and(|d| until == d && d < wanted) {
            return Err(wasmtime::Trap::Interrupt.into());
        }
        events.push(event(userdata, 0, 0));
    }
    let bytes: Vec<u8> = events.concat();
    let count = (events.len() as u32).to_le_bytes();
    let written = super::write_all(
        &memory,
        &mut *caller,
        &[(output, &bytes), (nevents, &count)],
    );
    Ok(if written { 0 } else { ERRNO_FAULT })
}

/// One `event`: userdata, no error, its type, and (for descriptors) the
/// bytes available.
fn event(userdata: u64, kind: u8, nbytes: u64) -> [u8; EVENT] {
    let mut e = [0u8; EVENT];
    e[..8].copy_from_slice(&userdata.to_le_bytes());
    e[10] = kind;
    e[16..24].copy_from_slice(&nbytes.to_le_bytes());
    e
}
