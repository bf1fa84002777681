//! Watches one object by name until a decision function says the wait is over.
//!
//! A raw watch (not polling) that resumes from the last `resourceVersion` seen when the server
//! closes the stream, re-reads the object when that version is too old (410 Gone), and gives up
//! after a bounded number and time of consecutive failures. It has no timeout of its own: callers wrap it
//! in [`tokio::time::timeout`].

use std::fmt::Debug;
use std::time::Duration;

use tokio::time::Instant;

use futures::StreamExt;
use kube::api::{Api, WatchEvent, WatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::retry::{self, ATTEMPTS};
use super::{ClusterError, Object};

/// Seconds the server keeps one watch request open; the watch is then resumed.
const WATCH_SECONDS: u32 = 60;
/// How long consecutive watch failures are ridden out (with [`retry::backoff`] between tries)
/// before giving up, and at least [`ATTEMPTS`] of them: long enough for an API server (or its
/// etcd) to be restarted under a running rollout watch.
const PATIENCE: Duration = Duration::from_secs(30);

/// Consecutive failures of a watch: whether to give up, else how long to wait.
#[derive(Debug, Default)]
struct Failures {
    count: u32,
    since: Option<Instant>,
}

impl Failures {
    /// Counts one more failure; `true` when the watch should give up.
    fn fail(&mut self) -> bool {
        self.count += 1;
        let since = *self.since.get_or_insert_with(Instant::now);
        self.count >= ATTEMPTS && since.elapsed() >= PATIENCE
    }

    fn reset(&mut self) {
        *self = Failures::default();
    }

    fn backoff(&self) -> Option<Duration> {
        (self.count > 0).then(|| retry::backoff(self.count))
    }
}

/// Reads the object, then watches it, calling `decide` on the first state and every change, until
/// `decide` returns `Some`.
///
/// # Errors
///
/// [`ClusterError::NotFound`] when the object does not exist or is deleted while watched;
/// [`ClusterError::Api`] after at least [`ATTEMPTS`] consecutive failed watch requests spanning
/// [`PATIENCE`], or at once for a failure that is not transient.
pub(super) async fn watch_until<K, T>(
    api: &Api<K>,
    object: Object<'_>,
    mut decide: impl FnMut(&K) -> Option<T>,
) -> Result<T, ClusterError>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let mut version = match read(api, object, &mut decide).await? {
        Ok(done) => return Ok(done),
        Err(version) => version,
    };
    let params = WatchParams::default()
        .fields(&format!("metadata.name={}", object.name))
        .timeout(WATCH_SECONDS);
    let mut failures = Failures::default();
    loop {
        let stream = match api.watch(&params, &version).await {
            Ok(stream) => stream,
            Err(kube::Error::Api(status)) if status.code == 410 => {
                version = match read(api, object, &mut decide).await? {
                    Ok(done) => return Ok(done),
                    Err(version) => version,
                };
                continue;
            }
            Err(err) => {
                if failures.fail() || !retry::is_transient(&err) {
                    return Err(object.api_error("watch", err));
                }
                tokio::time::sleep(failures.backoff().unwrap_or_default()).await;
                continue;
            }
        };
        let mut stream = stream.boxed();
        while let Some(event) = stream.next().await {
            match event {
                Ok(WatchEvent::Added(obj) | WatchEvent::Modified(obj)) => {
                    failures.reset();
                    if let Some(seen) = obj.resource_version() {
                        version = seen;
                    }
                    if let Some(done) = decide(&obj) {
                        return Ok(done);
                    }
                }
                Ok(WatchEvent::Deleted(_)) => return Err(object.not_found()),
                Ok(WatchEvent::Bookmark(bookmark)) => {
                    version = bookmark.metadata.resource_version;
                }
                Ok(WatchEvent::Error(status)) if status.code == 410 => {
                    // Our version fell out of the server's window: start again from a fresh read.
                    version = match read(api, object, &mut decide).await? {
                        Ok(done) => return Ok(done),
                        Err(version) => version,
                    };
                    break;
                }
                Ok(WatchEvent::Error(status)) => {
                    tracing::debug!(%object, ?status, "watch error event");
                    if failures.fail() {
                        return Err(object.api_error("watch", kube::Error::Api(status)));
                    }
                    break;
                }
                Err(err) => {
                    tracing::debug!(%object, error = %err, "watch stream failed; resuming");
                    if failures.fail() {
                        return Err(object.api_error("watch", err));
                    }
                    break;
                }
            }
        }
        if let Some(wait) = failures.backoff() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Reads the object: `Ok(done)` when `decide` is satisfied, else `Err(resource version)`.
async fn read<K, T>(
    api: &Api<K>,
    object: Object<'_>,
    decide: &mut impl FnMut(&K) -> Option<T>,
) -> Result<Result<T, String>, ClusterError>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let obj = retry::retry(|| api.get_opt(object.name))
        .await
        .map_err(|err| object.api_error("read", err))?
        .ok_or_else(|| object.not_found())?;
    if let Some(done) = decide(&obj) {
        return Ok(Ok(done));
    }
    Ok(Err(obj.resource_version().unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn consecutive_failures_are_ridden_out_for_a_bounded_time() {
        let mut failures = Failures::default();
        let started = Instant::now();
        let mut tries = 0;
        while !failures.fail() {
            tries += 1;
            tokio::time::sleep(failures.backoff().expect("a failure waits")).await;
        }
        assert!(started.elapsed() >= PATIENCE, "{:?}", started.elapsed());
        assert!(started.elapsed() <= PATIENCE + Duration::from_secs(3));
        assert!(tries >= ATTEMPTS - 1, "{tries}");
        failures.reset();
        assert_eq!(failures.backoff(), None);
    }
}
