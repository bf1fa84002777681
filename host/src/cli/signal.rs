//! Signals: what every command that changes a cluster waits for beside its work, and how long
//! its clean-up may take.
//!
//! Each command answers a signal by undoing what only it can undo, never by rolling back: a
//! re-run finishes or rolls back from what it finds. `deploy` releases every lock its run may
//! hold and tells the notifiers; `rollback` releases its stage's lock; `lock exec` passes the
//! signal on to the command it runs and keeps the lock until that command ends.

/// Waits for Ctrl-C (SIGINT) or SIGTERM (what CI sends when a job is cancelled), and names it.
pub(super) async fn shutdown_signal() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::warn!("cannot listen for SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

/// How long the clean-up after a signal may take: the lock releases and the notification each
/// get this long, side by side. CI gives a cancelled job's process a few seconds before it kills
/// it, and a cluster that does not answer would otherwise keep it in a request the retry's
/// budget allows far longer; a lock not released expires on its own.
pub(super) const CLEANUP_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);
