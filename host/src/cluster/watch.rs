//! Watches objects by name until a decision function says the wait is over for each.
//!
//! A raw watch (not polling) that resumes from the last `resourceVersion` seen when the server
//! closes the stream, re-reads the object when that version is too old (410 Gone), and gives up
//! after a bounded number and time of consecutive failures. It has no timeout of its own: callers wrap it
//! in [`tokio::time::timeout`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::time::Duration;

use tokio::time::Instant;

use futures::StreamExt;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::retry::{self, ATTEMPTS};
use super::{ClusterError, Object, Server};

/// Seconds the server keeps one watch request open; the watch is then resumed.
pub(super) const WATCH_SECONDS: u32 = 60;
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

    /// Tells `server`'s outage (see [`Server::failing`]) at the [`retry::TOLD_AFTER`]-th
    /// consecutive failure, `err`.
    fn tell(&self, server: &Server, err: &kube::Error) {
        if self.count == retry::TOLD_AFTER
            && let Some(since) = self.since
        {
            server.failing(
                err,
                since.into_std(),
                PATIENCE.saturating_sub(since.elapsed()),
            );
        }
    }

    /// An event came: the failures are over, and so is any outage of `server` being told.
    fn recovered(&mut self, server: &Server) {
        server.answered();
        self.reset();
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
/// said `true` for it; [`ClusterError::Api`] after at least [`ATTEMPTS`] consecutive failed
/// watch requests spanning [`PATIENCE`], or at once for a failure that is not transient.
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
    let mut params = WatchParams::default().timeout(WATCH_SECONDS);
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
/// rides out transient failures (see [`Failures`]). `all` names what is watched in errors.
///
/// # Errors
///
/// What `follower` returns; [`ClusterError::Api`] after at least [`ATTEMPTS`] consecutive
/// failed watch requests spanning [`PATIENCE`], or at once for a failure that is not transient.
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
    let mut failures = Failures::default();
    loop {
        let stream = match api.watch(params, &version).await {
            Ok(stream) => stream,
            Err(kube::Error::Api(status)) if status.code == 410 => {
                version = follower.read().await?;
                if follower.over() {
                    return Ok(());
                }
                continue;
            }
            Err(err) => {
                if failures.fail() || !retry::is_transient(&err) {
                    return Err(all.api_error("watch", err));
                }
                failures.tell(server, &err);
                tokio::time::sleep(failures.backoff().unwrap_or_default()).await;
                continue;
            }
        };
        let mut stream = stream.boxed();
        while let Some(event) = stream.next().await {
            match event {
                Ok(WatchEvent::Added(obj) | WatchEvent::Modified(obj)) => {
                    failures.recovered(server);
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
                    break;
                }
                Ok(WatchEvent::Error(status)) => {
                    tracing::debug!(object = %all, ?status, "watch error event");
                    if failures.fail() {
                        return Err(all.api_error("watch", kube::Error::Api(status)));
                    }
                    break;
                }
                Err(err) => {
                    tracing::debug!(object = %all, error = %err, "watch stream failed; resuming");
                    if failures.fail() {
                        return Err(all.api_error("watch", err));
                    }
                    failures.tell(server, &err);
                    break;
                }
            }
        }
        if let Some(wait) = failures.backoff() {
            tokio::time::sleep(wait).await;
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
