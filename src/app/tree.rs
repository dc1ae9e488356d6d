//! The agent's one task tree: a root cancellation token and a [`TaskTracker`], made once by
//! `app::run_with`. Every long-lived task of the agent is spawned on the tracker with a child
//! of the root token: none is detached, so shutdown can wait for all of them under one
//! deadline, and cancelling the root stops whatever an earlier stage left running.
//!
//! Invariant: a [`Task`] is stopped by its own token (a child of the root), in the drain
//! order `app` chooses; the root is cancelled last, by [`Tree::close`].

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

/// The root token and tracker. Clones share them.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    root: CancellationToken,
    tracker: TaskTracker,
}

impl Tree {
    pub fn new() -> Self {
        Self::default()
    }

    /// A new child of the root token.
    pub fn child(&self) -> CancellationToken {
        self.root.child_token()
    }

    /// Spawns `future` on the tracker.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(future)
    }

    /// Spawns the task `make` builds with a fresh child token.
    pub fn task<F>(&self, make: impl FnOnce(CancellationToken) -> F) -> Task
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let cancel = self.child();
        let handle = self.spawn(make(cancel.clone()));
        Task { handle, cancel }
    }

    /// Cancels the root and waits for every task until `deadline`; logs the tasks left.
    /// Returns whether all ended in time.
    pub async fn close(&self, deadline: Instant) -> bool {
        self.root.cancel();
        self.tracker.close();
        if tokio::time::timeout_at(deadline, self.tracker.wait())
            .await
            .is_err()
        {
            warn!(
                left = self.tracker.len(),
                "tasks still running at the shutdown deadline; leaving them"
            );
            return false;
        }
        true
    }
}

/// A task with its own stop token.
#[derive(Debug)]
pub struct Task {
    pub handle: JoinHandle<()>,
    pub cancel: CancellationToken,
}

impl Task {
    /// Cancels the task and waits for it to end.
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.handle.await;
    }

    /// [`Task::stop`] within `limit`; `false` (and the task left to the root) when it takes
    /// longer.
    pub async fn stop_within(self, limit: Duration) -> bool {
        self.cancel.cancel();
        tokio::time::timeout(limit, self.handle).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn closing_cancels_every_child_and_waits_for_them() {
        let tree = Tree::new();
        let stopped = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for _ in 0..3 {
            let stopped = stopped.clone();
            drop(tree.task(|cancel| async move {
                cancel.cancelled().await;
                stopped.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }));
        }
        assert!(tree.close(Instant::now() + Duration::from_secs(1)).await);
        assert_eq!(stopped.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_ignores_its_token_is_left_at_the_deadline() {
        let tree = Tree::new();
        drop(tree.spawn(std::future::pending::<()>()));
        assert!(!tree.close(Instant::now() + Duration::from_secs(1)).await);
    }
}
