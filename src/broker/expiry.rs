//! The task that serves the engine's timers (`timers.rs`): wills whose delay is over, sessions
//! whose expiry came. One task for every client.

use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::engine::Engine;
use super::timers::Timer;

/// Serves the timers of `engine` until `cancel`.
pub(super) async fn run(engine: Arc<Engine>, cancel: CancellationToken) {
    loop {
        let next = engine.timers.next();
        tokio::select! {
            () = cancel.cancelled() => return,
            () = engine.timers.changed.notified() => continue,
            () = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            } => {}
        }
        for timer in engine.timers.due(Instant::now()) {
            match timer {
                Timer::Will(client_id) => engine.will_due(&client_id).await,
                Timer::Expire(session) => {
                    if let Some(session) = session.upgrade() {
                        engine.expire(&session).await;
                    }
                }
            }
        }
    }
}
