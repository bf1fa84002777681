//! One API server as a person waiting on the run hears of it: an outage told once when it begins
//! and once when it ends, however many requests and watches ride it out.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::error::told;
use super::retry;

/// The API server of one kubeconfig context as a person waiting on the run hears of it: an
/// outage is told once when it begins and once when it ends, however many requests and watches
/// ride it out at the same time (a stage's applies, its rollout watch, the lock's renewals).
#[derive(Debug)]
pub(super) struct Server {
    /// The kubeconfig context, as messages name it.
    pub(super) context: String,
    /// The outage being told; `None` while the server answers.
    pub(super) outage: Mutex<Option<Outage>>,
}

/// An outage as it was told.
#[derive(Debug, Clone, Copy)]
pub(super) struct Outage {
    /// When its first failed attempt began.
    pub(super) began: Instant,
    /// How long the activity that told it said it keeps trying.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "what was told, kept for the tests of its truth")
    )]
    pub(super) left: Duration,
    /// When that activity gives up at the latest.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "what was told, kept for the tests of its truth")
    )]
    pub(super) gives_up: Instant,
}

impl Server {
    pub(super) fn new(context: String) -> Self {
        Self {
            context,
            outage: Mutex::new(None),
        }
    }

    /// An activity failed (see [`retry::Patience::tell`]), the first of its consecutive failed
    /// attempts beginning at `began`, with `error` last, and keeps trying for `left` at most:
    /// one quick failure is a blip (told only with -v), this is an outage, told unless it
    /// already is. Whether it was told now.
    pub(super) fn failing(&self, error: &kube::Error, began: Instant, left: Duration) -> bool {
        let mut outage = self.outage.lock().unwrap_or_else(PoisonError::into_inner);
        if outage.is_some() {
            return false;
        }
        *outage = Some(Outage {
            began,
            left,
            gives_up: Instant::now() + left,
        });
        tracing::warn!(
            "requests to the API server of context `{}` are failing ({}); retrying for about {} s",
            self.context,
            told(error),
            retry::seconds(left)
        );
        true
    }

    /// The server answered: an outage being told is over. How long it lasted, when one was.
    pub(super) fn answered(&self) -> Option<Duration> {
        let began = self
            .outage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?
            .began;
        tracing::info!(
            "the API server of context `{}` answers again, {:.1} s after the first failure",
            self.context,
            began.elapsed().as_secs_f32()
        );
        Some(began.elapsed())
    }

    /// The outage being told, if one is.
    #[cfg(test)]
    pub(super) fn told(&self) -> Option<Outage> {
        *self.outage.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
