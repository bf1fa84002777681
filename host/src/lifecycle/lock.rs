//! The deploy lock of an environment, as every path that changes a cluster takes it: a deploy's
//! stages, the post-deployment migrations of a stage that was already deployed, an on-demand
//! rollback, and `tagship lock run`.
//!
//! # Guarantees
//!
//! - [`EnvironmentLock::acquire`] returns within `[lock].wait` (plus one request): the lock is
//!   ours, or someone else held it the whole time ([`LockFailure::Held`]), or it could not be read
//!   or written ([`LockFailure::Unavailable`], at once when asking again cannot help: a missing
//!   namespace, a forbidden verb). Between tries it waits at most 2 s and never spins.
//! - [`EnvironmentLock::hold`] renews the lock every third of its time to live while the work
//!   runs, and stops the work as soon as the lock is taken over, or when it could not be renewed
//!   for a whole time to live (then nobody can tell who holds it).
//! - Releasing never touches someone else's lock (the adapter checks the holder).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::ports::{Holder, LockAttempt, Locks, PortError, Reporter};

/// The longest pause between two tries of a held or unreachable lock.
const POLL: Duration = Duration::from_secs(2);

/// Why the lock was not acquired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockFailure {
    /// Someone else held it for the whole wait.
    Held(Holder),
    /// It could not be read or written (within the wait, or at all), with why and the fix.
    Unavailable(String),
}

/// Why work under the lock was stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockLost {
    /// Someone else holds it now.
    TakenBy(Holder),
    /// It could not be renewed for a whole time to live: another deployer may have taken it.
    Unrenewable(String),
}

impl std::fmt::Display for LockLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockLost::TakenBy(holder) => write!(f, "was taken over by {holder}"),
            LockLost::Unrenewable(why) => {
                write!(f, "could not be renewed before it expired ({why})")
            }
        }
    }
}

/// The lock of one environment, for one holder (the adapter's).
pub struct EnvironmentLock<'a, C, R: ?Sized> {
    cluster: &'a C,
    reporter: &'a R,
    environment: &'a str,
    /// The stage its messages are about, if any.
    stage: Option<&'a str>,
    wait: Duration,
    ttl: Duration,
}

impl<'a, C: Locks, R: Reporter + ?Sized> EnvironmentLock<'a, C, R> {
    /// The lock of `environment`, waited for up to `wait`, renewed every `ttl / 3`; messages go
    /// to `reporter`, about `stage`.
    pub fn new(
        cluster: &'a C,
        reporter: &'a R,
        environment: &'a str,
        stage: Option<&'a str>,
        wait: Duration,
        ttl: Duration,
    ) -> Self {
        Self {
            cluster,
            reporter,
            environment,
            stage,
            wait,
            ttl,
        }
    }

    /// Takes the lock, trying until `wait` has passed. `on_held` is called once, the first time
    /// someone else is found holding it (to tell people who is waited for).
    pub async fn acquire(&self, on_held: impl AsyncFnOnce(&Holder)) -> Result<(), LockFailure> {
        let deadline = Instant::now() + self.wait;
        let mut on_held = Some(on_held);
        let mut told_error = false;
        loop {
            match self.cluster.try_lock(self.environment).await {
                Ok(LockAttempt::Acquired) => return Ok(()),
                Ok(LockAttempt::Held(holder)) => {
                    if let Some(tell) = on_held.take() {
                        tell(&holder).await;
                    }
                    if Instant::now() >= deadline {
                        return Err(LockFailure::Held(holder));
                    }
                }
                Err(e) if e.is_permanent() => {
                    return Err(LockFailure::Unavailable(self.unavailable(&e)));
                }
                Err(e) => {
                    if Instant::now() >= deadline {
                        return Err(LockFailure::Unavailable(self.unavailable(&e)));
                    }
                    if !told_error {
                        told_error = true;
                        self.reporter.step(
                            self.stage,
                            &format!(
                                "cannot read the lock of `{}` (trying again for up to {}s): {e}",
                                self.environment,
                                deadline.saturating_duration_since(Instant::now()).as_secs()
                            ),
                        );
                    }
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                continue;
            }
            tokio::time::sleep(POLL.min(left)).await;
        }
    }

    fn unavailable(&self, e: &PortError) -> String {
        format!("the lock of `{}` cannot be taken: {e}", self.environment)
    }

    /// Runs `work` while renewing the lock; stops it (dropping the future) when the lock is lost.
    pub async fn hold<T>(&self, work: impl Future<Output = T>) -> Result<T, LockLost> {
        let renewal = self.ttl / 3;
        let lost = async {
            let mut renewed = Instant::now();
            loop {
                tokio::time::sleep(renewal).await;
                match self.cluster.try_lock(self.environment).await {
                    Ok(LockAttempt::Acquired) => renewed = Instant::now(),
                    Ok(LockAttempt::Held(holder)) => return LockLost::TakenBy(holder),
                    Err(e) if renewed.elapsed() + renewal >= self.ttl => {
                        return LockLost::Unrenewable(e.to_string());
                    }
                    Err(e) => self.reporter.step(
                        self.stage,
                        &format!(
                            "could not renew the lock of `{}` (will retry): {e}",
                            self.environment
                        ),
                    ),
                }
            }
        };
        tokio::select! {
            result = work => Ok(result),
            lost = lost => Err(lost),
        }
    }

    /// Gives the lock back (only if this holder holds it); says so, or why it could not.
    pub async fn release(&self) {
        match self.cluster.unlock(self.environment).await {
            Ok(()) => self.reporter.step(
                None,
                &format!("released the lock of `{}`", self.environment),
            ),
            Err(e) => self.reporter.step(
                None,
                &format!(
                    "could not release the lock of `{}` (it expires on its own): {e}",
                    self.environment
                ),
            ),
        }
    }
}
