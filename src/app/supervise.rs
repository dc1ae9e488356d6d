//! Supervision of the agent's long-lived parts (each field line, the uplink, the command
//! router), after thin-edge's restart policy: a part that panics or returns an error (a part
//! that must run until cancelled returns one when it ends without being asked to) is
//! restarted after a capped, jittered backoff ([`POLICY`]: 1 s
//! doubling to 60 s, back to 1 s once an instance ran for a minute).
//!
//! Each failure is logged once, with its cause (the panic message or the error), and counted
//! (`ferrule_task_restarts_total`). While the part is down, `health::parts` names it (so
//! `/health` answers 503 saying which part, and systemd's `STATUS=` says it too), and the
//! part's `on_down` runs: a line publishes its devices `offline`.
//!
//! Invariants: at most one instance of a part runs at a time; cancelling the part's token
//! stops the instance and the supervisor, never restarts it, and an instance returning
//! `Ok` is done (no restart); every instance is spawned on the agent's [`Tree`], so none is
//! detached.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::error;

use super::tree::Tree;
use crate::backoff::Backoff;
use crate::health::parts::Parts;

/// When a failed part is restarted.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// The first restart's delay (jittered to half of it at least).
    pub initial: Duration,
    /// The longest delay between restarts.
    pub max: Duration,
    /// An instance that ran this long resets the delay to `initial`.
    pub stable: Duration,
}

/// The agent's restart policy.
pub const POLICY: Policy = Policy {
    initial: Duration::from_secs(1),
    max: Duration::from_secs(60),
    stable: Duration::from_secs(60),
};

/// A part of the agent under supervision.
pub struct Part {
    /// Its name in logs, `/health`, `STATUS=` and metrics: `line tcp 10.0.0.5:502`, `uplink`.
    pub name: String,
    pub parts: Parts,
    pub tree: Tree,
    pub policy: Policy,
    /// Remove the part from the registry when it stops (`false` when another instance
    /// under the same name takes over, as a replaced command router's successor does).
    pub forget: bool,
}

/// Runs the part `make` builds (with a token that is cancelled when `cancel` is) until
/// `cancel` or until an instance returns `Ok`, restarting it after each failure; `on_down`
/// runs after each failure, with its cause, before the wait.
pub async fn supervise<M, F, D, DF>(
    part: Part,
    cancel: CancellationToken,
    mut make: M,
    mut on_down: D,
) where
    M: FnMut(CancellationToken) -> F,
    F: Future<Output = Result<(), String>> + Send + 'static,
    D: FnMut(String) -> DF,
    DF: Future<Output = ()>,
{
    let Part {
        name,
        parts,
        tree,
        policy,
        forget,
    } = part;
    let mut backoff = Backoff::new(policy.initial, policy.max);
    loop {
        parts.running(&name);
        let started = Instant::now();
        let outcome = tree.spawn(make(cancel.clone())).await;
        if cancel.is_cancelled() {
            break;
        }
        let cause = match outcome {
            Ok(Ok(())) => break,
            Ok(Err(e)) => e,
            Err(e) if e.is_panic() => format!("panicked: {}", panic_message(e.into_panic())),
            Err(e) => format!("was aborted: {e}"),
        };
        if started.elapsed() >= policy.stable {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        parts.failed(&name, &cause);
        error!(part = %name, cause = %cause, restart_in = ?delay, "a part of the agent failed; restarting it");
        on_down(cause).await;
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(delay) => {}
        }
    }
    if forget {
        parts.remove(&name);
    }
}

/// The text of a panic's payload (`panic!` with a literal or a formatted message).
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(s) => (*s).to_owned(),
            Err(_) => "(a payload that is not text)".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;

    fn part(parts: &Parts, tree: &Tree) -> Part {
        Part {
            name: "line tcp 10.0.0.5:502".into(),
            parts: parts.clone(),
            tree: tree.clone(),
            policy: POLICY,
            forget: true,
        }
    }

    /// A part that panics twice is restarted twice, after bounded delays; it is down (with
    /// its cause) between a failure and its restart, and `on_down` runs once per failure.
    #[tokio::test(start_paused = true)]
    async fn a_panicking_part_is_restarted_with_backoff_and_reported_down_meanwhile() {
        let (parts, tree) = (Parts::default(), Tree::new());
        let cancel = CancellationToken::new();
        let starts = Arc::new(AtomicUsize::new(0));
        let downs = Arc::new(Mutex::new(Vec::<(String, Option<String>)>::new()));
        let seen = parts.clone();
        let sup = {
            let (starts, downs, cancel) = (starts.clone(), downs.clone(), cancel.clone());
            tokio::spawn(supervise(
                part(&parts, &tree),
                cancel,
                move |cancel: CancellationToken| {
                    let n = starts.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if n < 2 {
                            panic!("injected failure {n}");
                        }
                        cancel.cancelled().await;
                        Ok(())
                    }
                },
                move |cause| {
                    let down = seen.describe_down();
                    downs.lock().map(|mut d| d.push((cause, down))).ok();
                    async {}
                },
            ))
        };
        let begin = Instant::now();
        while starts.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let waited = begin.elapsed();
        // Two delays: [0.5, 1] s then [1, 2] s.
        assert!(
            waited >= Duration::from_millis(1500) && waited <= Duration::from_secs(4),
            "{waited:?}"
        );
        let downs = downs.lock().map(|d| d.clone()).unwrap_or_default();
        assert_eq!(downs.len(), 2);
        assert_eq!(downs[0].0, "panicked: injected failure 0");
        assert_eq!(
            downs[1].1.as_deref(),
            Some("line tcp 10.0.0.5:502 (panicked: injected failure 1)")
        );
        tokio::task::yield_now().await;
        let snapshot = parts.snapshot();
        assert_eq!(snapshot.len(), 1);
        assert_eq!(snapshot[0].1.restarts, 2);
        assert_eq!(snapshot[0].1.down, None);
        cancel.cancel();
        let _ = sup.await;
        assert!(parts.snapshot().is_empty(), "a stopped part is forgotten");
    }

    /// An error is a failure too; a part that returns `Ok` or is cancelled is not restarted.
    #[tokio::test(start_paused = true)]
    async fn errors_restart_but_success_and_cancellation_do_not() {
        let (parts, tree) = (Parts::default(), Tree::new());
        let cancel = CancellationToken::new();
        let causes = Arc::new(Mutex::new(Vec::new()));
        let starts = Arc::new(AtomicUsize::new(0));
        let sup = {
            let (causes, starts) = (causes.clone(), starts.clone());
            tokio::spawn(supervise(
                part(&parts, &tree),
                cancel.clone(),
                move |cancel: CancellationToken| {
                    let n = starts.fetch_add(1, Ordering::SeqCst);
                    async move {
                        match n {
                            0 => Err("cannot open /dev/ttyUSB0".to_owned()),
                            1 => Err("ended without being asked to".to_owned()),
                            2 => {
                                cancel.cancelled().await;
                                Ok(())
                            }
                            _ => Ok(()),
                        }
                    }
                },
                move |cause| {
                    causes.lock().map(|mut c| c.push(cause)).ok();
                    async {}
                },
            ))
        };
        while starts.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        cancel.cancel();
        let _ = sup.await;
        assert_eq!(
            starts.load(Ordering::SeqCst),
            3,
            "no restart after the cancel"
        );
        assert_eq!(
            causes.lock().map(|c| c.clone()).unwrap_or_default(),
            ["cannot open /dev/ttyUSB0", "ended without being asked to"]
        );
        // An instance that returns `Ok` is done.
        let done = supervise(
            part(&parts, &tree),
            CancellationToken::new(),
            |_| async { Ok(()) },
            |_| async {},
        );
        assert!(
            tokio::time::timeout(Duration::from_secs(1), done)
                .await
                .is_ok(),
            "an instance returning Ok was restarted"
        );
        assert!(parts.snapshot().is_empty());
    }
}
