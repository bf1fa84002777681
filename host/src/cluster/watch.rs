//! Watches objects by name until a decision function says the wait is over for each.
//!
//! A raw watch (not polling) that resumes from the last `resourceVersion` seen when the server
//! closes the stream, re-reads the object when that version is too old (410 Gone), and gives up
//! once its watch requests have failed for [`PATIENCE`]. It has no timeout of its own: callers
//! wrap it in [`tokio::time::timeout`].
//!
//! # Guarantees
//!
//! - A quiet watch is not a failing one. Each watch request asks the server to end it after
//!   [`WATCH_SECONDS`] (`timeoutSeconds`) and for bookmarks (`allowWatchBookmarks`, which keep
//!   its `resourceVersion` fresh however quiet the objects are); the client waits longer than
//!   that for the stream's next line (`WATCH_READ_TIMEOUT`). A stream the server ended, or one
//!   that ran its full [`WATCH_SECONDS`] however it ended, is resumed at once and counts as
//!   neither a failure nor an outage.
//! - A watch request the server does not answer within `READ_TIMEOUT` fails; failures are
//!   ridden out for [`PATIENCE`] from the first failed request (hangs included) and told as
//!   requests are (see `retry::Patience`): the warning names the time left, and the watch gives
//!   up by then at the latest.
//! - The server answering a watch request (200) ends an outage being told; a stream that then
//!   breaks before delivering anything still backs off, growing, so a server that accepts
//!   watches and cuts them at once is not asked ten times a second.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::time::Duration;

use tokio::time::Instant;

use futures::StreamExt;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::retry::{self, Patience};
use super::{ClusterError, Object, READ_TIMEOUT, Server};

/// Seconds the server keeps one watch request open; the watch is then resumed.
pub(super) const WATCH_SECONDS: u32 = 60;
/// How long failing watch requests are ridden out before the watch gives up, from the start of
/// the first: long enough for an API server (or its etcd) to be restarted under a running
/// rollout watch.
pub(super) const PATIENCE: Duration = Duration::from_secs(30);

/// The parameters of every watch request: ended by the server after [`WATCH_SECONDS`], with
/// bookmarks (Kubernetes 1.17 and later send one shortly before the end).
pub(super) fn watch_params() -> WatchParams {
    let mut params = WatchParams::default().timeout(WATCH_SECONDS);
    params.bookmarks = true;
    params
}

/// How a watch stream ended.
#[derive(Debug)]
enum Ended {
    /// The server ended it, or it ran its full [`WATCH_SECONDS`]: resume at once.
    Normally,
    /// It broke, or the server sent an error: a failure.
    Failed(kube::Error),
    /// The version watched from is too old, and the objects were read afresh.
    Resync,
}

/// Whether a stream that broke with `err` after running for `ran` had lived its life: the
/// server ends it after [`WATCH_SECONDS`], and a connection cut around then (by a proxy or
/// load balancer, or the client's read timeout if the end never came) lost nothing.
fn lived_its_life(ran: Duration) -> bool {
    ran >= Duration::from_secs(u64::from(WATCH_SECONDS))
}

/// Reads the object, then watches it, calling `decide` on the first state and every change, until
/// `decide` returns `Some`.
///
/// # Errors
///
/// As [`watch_each`].
pub(super) async fn watch_until<K, T>(
    api: &Api<K>,
    server: &Server,
    object: Object<'_>,
    mut decide: impl FnMut(&K) -> Option<T>,
) -> Result<T, ClusterError>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let mut outcome = None;
    watch_each(
        api,
        server,
        object.kind,
        object.namespace,
        &[object.name],
        |obj| {
            outcome = decide(obj);
            outcome.is_some()
        },
    )
    .await?;
    // `watch_each` returns only once `decide` said `Some` for the one name.
    outcome.ok_or_else(|| object.not_found())
}

/// Reads the objects `names` (of kind `kind`, in `api`'s namespace `ns`), then watches them,
/// calling `done` on each one's first state and on every change until it returns `true` for
/// that object; returns when it has for all of them.
///
/// One name is read with a GET and watched with a field selector on it; several are read with
/// one LIST and watched with one watch of the namespace, so the cost in requests and connections
/// does not grow with their number. Objects not named are skipped, as are named objects after
/// `done` said `true` for them.
///
/// # Errors
///
/// [`ClusterError::NotFound`] when a named object does not exist, or is deleted before `done`
/// said `true` for it; [`ClusterError::Api`] once watch requests have failed for [`PATIENCE`],
/// or at once for a failure that is not transient.
pub(super) async fn watch_each<K>(
    api: &Api<K>,
    server: &Server,
    kind: &'static str,
    ns: &str,
    names: &[&str],
    done: impl FnMut(&K) -> bool,
) -> Result<(), ClusterError>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let listed = names.join("`, `");
    let mut params = watch_params();
    if let [name] = names {
        params = params.fields(&format!("metadata.name={name}"));
    }
    let mut follower = Named {
        api,
        server,
        kind,
        ns,
        pending: names.iter().copied().collect(),
        done,
    };
    follow(
        api,
        server,
        Object::new(kind, ns, &listed),
        &params,
        &mut follower,
    )
    .await
}

/// What a watch does with what it reads and sees: [`follow`] drives it.
pub(super) trait Follower<K> {
    /// Reads the objects afresh (at the start, and when the watch's version is too old); the
    /// resource version to watch from.
    async fn read(&mut self) -> Result<String, ClusterError>;
    /// An object was added or changed.
    fn changed(&mut self, object: &K) -> Result<(), ClusterError>;
    /// An object was deleted.
    fn deleted(&mut self, object: &K) -> Result<(), ClusterError>;
    /// Whether the watch has seen what it waited for.
    fn over(&self) -> bool;
}

/// Reads with `follower`, then watches `api` with `params` from the version read, telling
/// `follower` of every change until it says it is over. Resumes from the last version seen when
/// the server closes the stream, reads afresh when that version is too old (410 Gone), and
/// rides out failing watch requests for [`PATIENCE`] (see the module's guarantees). `all` names
/// what is watched in errors.
///
/// # Errors
///
/// What `follower` returns; [`ClusterError::Api`] once watch requests have failed for
/// [`PATIENCE`], or at once for a failure that is not transient.
pub(super) async fn follow<K, F>(
    api: &Api<K>,
    server: &Server,
    all: Object<'_>,
    params: &WatchParams,
    follower: &mut F,
) -> Result<(), ClusterError>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    F: Follower<K>,
{
    let mut version = follower.read().await?;
    if follower.over() {
        return Ok(());
    }
    // Failed watch requests, within PATIENCE; and the streams in a row that broke before they
    // delivered anything, for the back-off (a request answered 200 is not a failed one).
    let mut patience = Patience::new(PATIENCE);
    let mut broken = 0;
    loop {
        let began = Instant::now();
        let limit = patience.limit(began).min(READ_TIMEOUT);
        let stream = match patience.bound(limit, api.watch(params, &version)).await {
            Ok(stream) => stream,
            Err(kube::Error::Api(status)) if status.code == 410 => {
                version = follower.read().await?;
                if follower.over() {
                    return Ok(());
                }
                continue;
            }
            Err(err) => {
                let wait = retry::delay(patience.count() + 1, &err);
                if !retry::is_transient(&err) || !patience.failed(began, wait) {
                    return Err(all.api_error("watch", err));
                }
                if !patience.tell(server, &err) {
                    tracing::debug!(object = %all, error = %err, "watch request failed; retrying");
                }
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        // Answered: whatever the stream does next, the server is there.
        patience.reset();
        server.answered();
        let mut delivered = false;
        let mut stream = stream.boxed();
        let ended = loop {
            let Some(event) = stream.next().await else {
                break Ended::Normally;
            };
            if event.is_ok() {
                delivered = true;
            }
            match event {
                Ok(WatchEvent::Added(obj) | WatchEvent::Modified(obj)) => {
                    if let Some(seen) = obj.resource_version() {
                        version = seen;
                    }
                    follower.changed(&obj)?;
                    if follower.over() {
                        return Ok(());
                    }
                }
                Ok(WatchEvent::Deleted(obj)) => {
                    if let Some(seen) = obj.resource_version() {
                        version = seen;
                    }
                    follower.deleted(&obj)?;
                    if follower.over() {
                        return Ok(());
                    }
                }
                Ok(WatchEvent::Bookmark(bookmark)) => {
                    version = bookmark.metadata.resource_version;
                }
                Ok(WatchEvent::Error(status)) if status.code == 410 => {
                    // Our version fell out of the server's window: start again from a fresh read.
                    version = follower.read().await?;
                    if follower.over() {
                        return Ok(());
                    }
                    break Ended::Resync;
                }
                Ok(WatchEvent::Error(status)) => {
                    tracing::debug!(object = %all, ?status, "watch error event");
                    break Ended::Failed(kube::Error::Api(status));
                }
                Err(err) if lived_its_life(began.elapsed()) => {
                    tracing::debug!(object = %all, error = %err, "watch stream ended at its time");
                    break Ended::Normally;
                }
                Err(err) => break Ended::Failed(err),
            }
        };
        match ended {
            Ended::Normally | Ended::Resync => broken = 0,
            Ended::Failed(err) => {
                tracing::debug!(object = %all, error = %err, "watch stream broke; resuming");
                broken = if delivered { 1 } else { broken + 1 };
                tokio::time::sleep(retry::delay(broken, &err)).await;
            }
        }
    }
}

/// [`watch_each`]'s follower: the named objects not yet done.
struct Named<'a, K, D> {
    api: &'a Api<K>,
    server: &'a Server,
    kind: &'static str,
    ns: &'a str,
    pending: BTreeSet<&'a str>,
    done: D,
}

impl<K, D> Follower<K> for Named<'_, K, D>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    D: FnMut(&K) -> bool,
{
    async fn read(&mut self) -> Result<String, ClusterError> {
        read(
            self.api,
            self.server,
            self.kind,
            self.ns,
            &mut self.pending,
            &mut self.done,
        )
        .await
    }

    fn changed(&mut self, obj: &K) -> Result<(), ClusterError> {
        let name = obj.meta().name.as_deref().unwrap_or_default();
        if self.pending.contains(name) && (self.done)(obj) {
            self.pending.remove(name);
        }
        Ok(())
    }

    fn deleted(&mut self, obj: &K) -> Result<(), ClusterError> {
        let name = obj.meta().name.as_deref().unwrap_or_default();
        if self.pending.contains(name) {
            return Err(Object::new(self.kind, self.ns, name).not_found());
        }
        Ok(())
    }

    fn over(&self) -> bool {
        self.pending.is_empty()
    }
}

/// Reads the pending objects (see [`read_named`]), calls `done` on each and drops those it is
/// satisfied with from `pending`; the resource version to watch from.
async fn read<K>(
    api: &Api<K>,
    server: &Server,
    kind: &'static str,
    ns: &str,
    pending: &mut BTreeSet<&str>,
    done: &mut impl FnMut(&K) -> bool,
) -> Result<String, ClusterError>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let names: Vec<&str> = pending.iter().copied().collect();
    let (found, version) = read_named(api, server, kind, ns, &names).await?;
    for name in names {
        let obj = found
            .get(name)
            .ok_or_else(|| Object::new(kind, ns, name).not_found())?;
        if done(obj) {
            pending.remove(name);
        }
    }
    Ok(version)
}

/// Those of the objects `names` (of kind `kind`, in `api`'s namespace `ns`) that exist, by
/// name, and the resource version to watch them from: one GET for one name, one LIST of the
/// namespace for more, so the number of requests does not grow with theirs.
///
/// # Errors
///
/// [`ClusterError::Api`] when the read fails (after the retries for transient errors).
pub(super) async fn read_named<K>(
    api: &Api<K>,
    server: &Server,
    kind: &'static str,
    ns: &str,
    names: &[&str],
) -> Result<(BTreeMap<String, K>, String), ClusterError>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    if let [name] = names {
        let found = retry::retry(server, || api.get_opt(name))
            .await
            .map_err(|err| Object::new(kind, ns, name).api_error("read", err))?;
        let version = found
            .as_ref()
            .and_then(ResourceExt::resource_version)
            .unwrap_or_default();
        let found = found.map(|obj| ((*name).to_owned(), obj)).into_iter();
        return Ok((found.collect(), version));
    }
    let listed = names.join("`, `");
    let params = ListParams::default();
    let list = retry::retry(server, || api.list(&params))
        .await
        .map_err(|err| Object::new(kind, ns, &listed).api_error("read", err))?;
    let version = list.metadata.resource_version.unwrap_or_default();
    let found = list
        .items
        .into_iter()
        .filter_map(|obj| {
            let name = obj.meta().name.clone()?;
            names.contains(&name.as_str()).then_some((name, obj))
        })
        .collect();
    Ok((found, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watch_pool_waits_past_the_server_s_end_of_a_watch() {
        let server_ends = Duration::from_secs(u64::from(WATCH_SECONDS));
        assert!(super::super::WATCH_READ_TIMEOUT > server_ends);
        assert!(
            READ_TIMEOUT < server_ends,
            "a request's read timeout would cut watches"
        );
        let params = watch_params();
        assert_eq!(params.timeout, Some(WATCH_SECONDS));
        assert!(params.bookmarks);
    }

    #[test]
    fn a_stream_that_ran_its_full_time_lived_its_life_however_it_ended() {
        let table = [
            ("cut at once", Duration::ZERO, false),
            (
                "cut by the old 30 s read timeout",
                Duration::from_secs(30),
                false,
            ),
            ("ended by the server", Duration::from_mins(1), true),
            (
                "cut by the watch pool's read timeout",
                super::super::WATCH_READ_TIMEOUT,
                true,
            ),
        ];
        for (what, ran, lived) in table {
            assert_eq!(lived_its_life(ran), lived, "{what}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn failing_watch_requests_are_ridden_out_for_their_patience_and_no_longer() {
        let server = Server::new("local-1".into());
        let mut patience = Patience::new(PATIENCE);
        let started = Instant::now();
        let mut tries = 0;
        loop {
            tries += 1;
            let began = Instant::now();
            // A watch request that hangs until it is abandoned.
            let limit = patience.limit(began).min(READ_TIMEOUT);
            let err = patience
                .bound(limit, std::future::pending::<Result<(), kube::Error>>())
                .await
                .expect_err("never answered");
            let wait = retry::delay(patience.count() + 1, &err);
            if !patience.failed(began, wait) {
                break;
            }
            patience.tell(&server, &err);
            tokio::time::sleep(wait).await;
        }
        let told = server.told().expect("told at the first hang");
        assert_eq!(told.gives_up - told.left, started + READ_TIMEOUT);
        assert!(
            Instant::now() <= told.gives_up,
            "gave up after the time told"
        );
        assert!(started.elapsed() <= PATIENCE);
        assert!(started.elapsed() + Duration::from_secs(3) >= PATIENCE);
        assert_eq!(tries, 3, "three requests of 10 s");
    }
}
