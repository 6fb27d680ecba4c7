//! A switch handle that keeps a connection up: reconnect with exponential backoff, a state
//! watch, and one event stream across connections.

use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::connection::{ConnOptions, Connection};
use super::frame::EventSink;
use super::transport::Target;
use super::{Error, Event, Result};

/// Options of a [`Switch`].
#[derive(Debug, Clone)]
pub struct SwitchOptions {
    /// Options of each connection (its `event_queue` is the size of the switch's event queue).
    pub conn: ConnOptions,
    /// First retry delay after a failure.
    pub backoff_initial: Duration,
    /// Largest retry delay.
    pub backoff_max: Duration,
    /// A connection that lived this long resets the backoff.
    pub stable_after: Duration,
}

impl Default for SwitchOptions {
    fn default() -> SwitchOptions {
        SwitchOptions {
            conn: ConnOptions::default(),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(8),
            stable_after: Duration::from_secs(10),
        }
    }
}

/// Where the switch handle is.
#[derive(Debug, Clone)]
pub enum ConnState {
    /// Connecting (attempt 1 is the first after a start or a disconnect).
    Connecting { attempt: u32 },
    /// Connected; `generation` counts connections since [`Switch::start`] (first is 1).
    Connected { generation: u64, datapath_id: u64 },
    /// Waiting `retry_in` before the next attempt, after `last_error`.
    Backoff {
        attempt: u32,
        retry_in: Duration,
        last_error: Error,
    },
    /// [`Switch::stop`] was called (or every handle dropped).
    Stopped,
}

impl ConnState {
    pub fn is_connected(&self) -> bool {
        matches!(self, ConnState::Connected { .. })
    }
}

struct Core {
    stopped: std::sync::atomic::AtomicBool,
    target: Target,
    opts: SwitchOptions,
    state: watch::Sender<ConnState>,
    current: Mutex<Option<Connection>>,
    events: Arc<EventSink>,
}

struct Handle {
    core: Arc<Core>,
    events_rx: Mutex<Option<mpsc::Receiver<Event>>>,
    task: JoinHandle<()>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.task.abort();
        self.core.stop();
    }
}

/// A switch kept connected: [`Switch::start`] spawns a supervisor that connects, waits for the
/// connection to end, and reconnects with exponential backoff (with jitter). Each new
/// connection is announced with [`Event::Connected`] (and on the state watch) so the user can
/// resync; [`Switch::connection`] hands out the current connection. Clones share the handle;
/// the supervisor stops when the last clone is dropped or [`Switch::stop`] is called.
#[derive(Clone)]
pub struct Switch {
    handle: Arc<Handle>,
}

impl Core {
    fn is_stopped(&self) -> bool {
        self.stopped.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn set_state(&self, s: ConnState) {
        if !self.is_stopped() {
            self.state.send_replace(s);
        }
    }

    fn stop(&self) {
        self.stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let cur = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(c) = cur {
            c.close();
        }
        self.state.send_replace(ConnState::Stopped);
    }

    fn set_current(&self, c: Option<Connection>) {
        let mut cur = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        match c {
            Some(c) if self.is_stopped() => c.close(),
            c => *cur = c,
        }
    }
}

fn jitter(d: Duration) -> Duration {
    // Up to +25%, from the std hasher's random keys (no extra dependency).
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    d + d.mul_f64((r % 1000) as f64 / 4000.0)
}

async fn supervise(core: Arc<Core>) {
    let o = &core.opts;
    let mut generation = 0u64;
    let mut delay = o.backoff_initial;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        core.set_state(ConnState::Connecting { attempt });
        let r = Connection::connect_target(
            &core.target,
            &o.conn,
            core.events.clone(),
            None,
            Some(generation + 1),
        )
        .await;
        let err = match r {
            Ok(conn) => {
                generation += 1;
                attempt = 0;
                let up = Instant::now();
                core.set_current(Some(conn.clone()));
                core.set_state(ConnState::Connected {
                    generation,
                    datapath_id: conn.datapath_id(),
                });
                tracing::info!(target = %core.target, generation, "OpenFlow connection up");
                let reason = conn.closed().await;
                core.set_current(None);
                drop(conn);
                core.events.deliver(Event::Disconnected {
                    generation,
                    reason: reason.clone(),
                });
                if up.elapsed() >= o.stable_after {
                    delay = o.backoff_initial;
                }
                reason
            }
            Err(e) => e,
        };
        let retry_in = jitter(delay);
        tracing::info!(target = %core.target, "OpenFlow connection down ({err}); retry in {retry_in:?}");
        core.set_state(ConnState::Backoff {
            attempt,
            retry_in,
            last_error: err,
        });
        tokio::time::sleep(retry_in).await;
        delay = (delay * 2).min(o.backoff_max);
    }
}

impl Switch {
    /// Starts keeping a connection to `target` (`unix:PATH` or `tcp:HOST[:PORT]`). Must be
    /// called inside a tokio runtime. Fails only on a malformed target.
    pub fn start(target: &str, opts: SwitchOptions) -> Result<Switch> {
        let target: Target = target.parse()?;
        let (sink, rx) = EventSink::new(opts.conn.event_queue);
        let core = Arc::new(Core {
            stopped: Default::default(),
            target,
            opts,
            state: watch::channel(ConnState::Connecting { attempt: 0 }).0,
            current: Mutex::new(None),
            events: Arc::new(sink),
        });
        let task = tokio::spawn(supervise(core.clone()));
        Ok(Switch {
            handle: Arc::new(Handle {
                core,
                events_rx: Mutex::new(Some(rx)),
                task,
            }),
        })
    }

    /// A watch of the connection state.
    pub fn state(&self) -> watch::Receiver<ConnState> {
        self.handle.core.state.subscribe()
    }

    /// The current connection, if connected.
    pub fn current(&self) -> Option<Connection> {
        self.handle
            .core
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .filter(|c| !c.is_closed())
    }

    /// Waits until connected and returns the connection (`Err(Error::Stopped)` once stopped).
    pub async fn connection(&self) -> Result<Connection> {
        let mut rx = self.state();
        loop {
            // Mark the state seen *before* looking at the connection: the supervisor stores
            // the connection before publishing `Connected`, so no wake-up is missed.
            let stopped = matches!(*rx.borrow_and_update(), ConnState::Stopped);
            if let Some(c) = self.current() {
                return Ok(c);
            }
            if stopped {
                return Err(Error::Stopped);
            }
            if rx.changed().await.is_err() {
                return Err(Error::Stopped);
            }
        }
    }

    /// The event stream, across connections; `Some` only on the first call. Each connection
    /// begins with [`Event::Connected`] and ends with [`Event::Disconnected`].
    pub fn take_events(&self) -> Option<mpsc::Receiver<Event>> {
        self.handle
            .events_rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Stops reconnecting and closes the current connection.
    pub fn stop(&self) {
        self.handle.task.abort();
        self.handle.core.stop();
    }
}

impl std::fmt::Debug for Switch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Switch")
            .field("target", &self.handle.core.target)
            .field("state", &*self.handle.core.state.borrow())
            .finish()
    }
}
