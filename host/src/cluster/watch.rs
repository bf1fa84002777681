//! Watches one object by name until a decision function says the wait is over.
//!
//! A raw watch (not polling) that resumes from the last `resourceVersion` seen when the server
//! closes the stream, re-reads the object when that version is too old (410 Gone), and gives up
//! after a bounded number of consecutive failures. It has no timeout of its own: callers wrap it
//! in [`tokio::time::timeout`].

use std::fmt::Debug;

use futures::StreamExt;
use kube::api::{Api, WatchEvent, WatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::retry::{self, ATTEMPTS};
use super::{ClusterError, Object};

/// Seconds the server keeps one watch request open; the watch is then resumed.
const WATCH_SECONDS: u32 = 60;

/// Reads the object, then watches it, calling `decide` on the first state and every change, until
/// `decide` returns `Some`.
///
/// # Errors
///
/// [`ClusterError::NotFound`] when the object does not exist or is deleted while watched;
/// [`ClusterError::Api`] after [`ATTEMPTS`] consecutive failed watch requests.
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
    let mut failures = 0;
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
                failures += 1;
                if failures >= ATTEMPTS || !retry::is_transient(&err) {
                    return Err(object.api_error("watch", err));
                }
                tokio::time::sleep(retry::backoff(failures)).await;
                continue;
            }
        };
        let mut stream = stream.boxed();
        while let Some(event) = stream.next().await {
            match event {
                Ok(WatchEvent::Added(obj) | WatchEvent::Modified(obj)) => {
                    failures = 0;
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
                    failures += 1;
                    tracing::debug!(%object, ?status, "watch error event");
                    if failures >= ATTEMPTS {
                        return Err(object.api_error("watch", kube::Error::Api(status)));
                    }
                    break;
                }
                Err(err) => {
                    failures += 1;
                    tracing::debug!(%object, error = %err, "watch stream failed; resuming");
                    if failures >= ATTEMPTS {
                        return Err(object.api_error("watch", err));
                    }
                    break;
                }
            }
        }
        if failures > 0 {
            tokio::time::sleep(retry::backoff(failures)).await;
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
