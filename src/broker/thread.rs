//! The broker's own thread: listeners, connection tasks, timers and `$SYS` run on one
//! single-threaded tokio runtime, in a thread of its own ("ferrule-broker").
//!
//! Why one thread, as Mosquitto does: MQTT clients (and the Paho interoperability suite) rely
//! on the broker handling packets in the order they arrived *across* connections — a client
//! sends SUBSCRIBE on one connection, another publishes right after, and the subscriber expects
//! the message even though it never waited for its SUBACK. A multi-threaded scheduler (worker
//! threads stealing tasks, the LIFO slot) may process the later PUBLISH first; a single thread
//! serving readiness events in the order epoll reports them does not. It also keeps the
//! engine's locks uncontended and the agent's own work (polling, the uplink) off the broker's
//! thread and vice versa.
//!
//! The thread also gives freed memory back: glibc keeps what a burst freed (2,000 clients
//! that left, a queue drained) in its heap for reuse, so RSS only grows; every [`TRIM_EVERY`]
//! the thread calls [`crate::memory::trim`], which returns free pages of every arena to the
//! system (a walk of the free lists: well under a millisecond for a gateway's heap); see
//! `memory.rs` for the allocator policy.
//!
//! Invariants:
//! - the runtime lives until [`BrokerThread::stop`] (or drop): tasks spawned on it are never
//!   dropped mid-flight by the runtime ending before the broker's own drain;
//! - sockets must be registered inside [`BrokerThread::enter`] so their readiness is served by
//!   this thread's reactor.

use std::io;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::runtime::{Builder, Handle};
use tokio_util::sync::CancellationToken;

/// How often freed memory is given back to the system.
pub const TRIM_EVERY: Duration = Duration::from_secs(10);

/// The thread and the handle to spawn on it.
#[derive(Debug)]
pub(super) struct BrokerThread {
    handle: Handle,
    stop: CancellationToken,
    join: Option<JoinHandle<()>>,
}

impl BrokerThread {
    /// Starts the thread and its runtime.
    pub fn start() -> io::Result<BrokerThread> {
        let runtime = Builder::new_current_thread()
            .enable_all()
            .thread_name("ferrule-broker")
            .build()?;
        let handle = runtime.handle().clone();
        let stop = CancellationToken::new();
        let until = stop.clone();
        let join = std::thread::Builder::new()
            .name("ferrule-broker".to_owned())
            .spawn(move || {
                runtime.block_on(async {
                    let mut every = tokio::time::interval(TRIM_EVERY);
                    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tokio::select! {
                            () = until.cancelled() => break,
                            _ = every.tick() => crate::memory::trim(),
                        }
                    }
                });
                // Whatever is still spawned (nothing after a clean shutdown) is dropped here.
                drop(runtime);
            })?;
        Ok(BrokerThread {
            handle,
            stop,
            join: Some(join),
        })
    }

    /// The runtime's handle: spawn on it, or enter it to register sockets.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Stops the runtime and waits for the thread (blocking: call from a blocking context or
    /// after every task has finished, when it returns at once).
    pub fn stop(&mut self) {
        self.stop.cancel();
        if let Some(join) = self.join.take() {
            let _ = join.join();
        }
    }
}

impl Drop for BrokerThread {
    fn drop(&mut self) {
        // Not joined: drop may run inside an async context; the thread ends on its own.
        self.stop.cancel();
    }
}
