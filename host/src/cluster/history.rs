//! The audit trail and small state records, kept in `ConfigMaps` next to the workloads.
//!
//! - History: `ConfigMap` `tagship-history-<stage>`, key [`HISTORY_KEY`], a JSON array of entries,
//!   oldest first, at most [`HISTORY_LIMIT`]. The lifecycle defines an entry's shape.
//! - State: `ConfigMap` `tagship-state-<environment>`, one string per key (e.g. the post-deployment
//!   migration watermark `post_migrated_version`).
//!
//! Writes are read-modify-write with the `resourceVersion` read (optimistic concurrency); a
//! conflict re-reads and retries, so concurrent appends are never lost.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use serde_json::Value;

use super::retry;
use super::{ClusterError, FIELD_MANAGER, KubeCluster, Object};

/// Data key of the history `ConfigMap`.
pub const HISTORY_KEY: &str = "history.json";
/// How many history entries are kept per stage; older ones are dropped.
pub const HISTORY_LIMIT: usize = 50;

/// Read-modify-write rounds before giving up.
const ROUNDS: u32 = 10;

/// A new `ConfigMap` named for `object`, labelled as tagship's, holding `data`.
fn new_config_map(object: Object<'_>, data: BTreeMap<String, String>) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(object.name.to_owned()),
            namespace: Some(object.namespace.to_owned()),
            labels: Some(
                [(
                    "app.kubernetes.io/managed-by".to_owned(),
                    FIELD_MANAGER.to_owned(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..ConfigMap::default()
    }
}

fn history_name(stage: &str) -> String {
    format!("tagship-history-{stage}")
}

fn state_name(environment: &str) -> String {
    format!("tagship-state-{environment}")
}

/// `history` with `entry` appended and only the newest `limit` kept.
fn appended(mut history: Vec<Value>, entry: Value, limit: usize) -> Vec<Value> {
    history.push(entry);
    let excess = history.len().saturating_sub(limit);
    history.drain(..excess);
    history
}

/// The history stored in `map`: empty when there is none yet.
fn parse_history(map: Option<&ConfigMap>, object: Object<'_>) -> Result<Vec<Value>, ClusterError> {
    let Some(text) = map
        .and_then(|m| m.data.as_ref())
        .and_then(|d| d.get(HISTORY_KEY))
    else {
        return Ok(Vec::new());
    };
    serde_json::from_str(text).map_err(|err| ClusterError::Corrupt {
        what: format!("key `{HISTORY_KEY}` of {object}"),
        reason: err.to_string(),
    })
}

impl KubeCluster {
    /// Appends `entry` to the history of `stage` in `ns`, keeping the newest [`HISTORY_LIMIT`].
    pub async fn history_append(
        &self,
        ns: &str,
        stage: &str,
        entry: Value,
    ) -> Result<(), ClusterError> {
        let name = history_name(stage);
        let object = Object::new("configmap", ns, &name);
        self.update_config_map(object, |current| {
            let history = parse_history(current, object)?;
            // A write whose answer was lost may have landed: the entry (which carries its own
            // time) is then already the newest, and appending it again would record it twice.
            if history.last() == Some(&entry) {
                return Ok(None);
            }
            let history = appended(history, entry.clone(), HISTORY_LIMIT);
            let text = serde_json::to_string(&history).map_err(|err| ClusterError::Corrupt {
                what: format!("the new history of {object}"),
                reason: err.to_string(),
            })?;
            Ok(Some([(HISTORY_KEY.to_owned(), text)].into()))
        })
        .await
    }

    /// The history of `stage` in `ns`, oldest first; empty when there is none.
    pub async fn history(&self, ns: &str, stage: &str) -> Result<Vec<Value>, ClusterError> {
        let name = history_name(stage);
        let object = Object::new("configmap", ns, &name);
        let map = self.config_map(object).await?;
        parse_history(map.as_ref(), object)
    }

    /// The value of `key` in the state of `environment`, `None` when unset.
    pub async fn state_get(
        &self,
        ns: &str,
        environment: &str,
        key: &str,
    ) -> Result<Option<String>, ClusterError> {
        let name = state_name(environment);
        let map = self.config_map(Object::new("configmap", ns, &name)).await?;
        Ok(map.and_then(|m| m.data).and_then(|mut d| d.remove(key)))
    }

    /// Sets `key` to `value` in the state of `environment`; other keys are kept.
    pub async fn state_set(
        &self,
        ns: &str,
        environment: &str,
        key: &str,
        value: &str,
    ) -> Result<(), ClusterError> {
        let name = state_name(environment);
        let object = Object::new("configmap", ns, &name);
        self.update_config_map(object, |current| {
            let mut data = current.and_then(|m| m.data.clone()).unwrap_or_default();
            if data.get(key).map(String::as_str) == Some(value) {
                return Ok(None);
            }
            data.insert(key.to_owned(), value.to_owned());
            Ok(Some(data))
        })
        .await
    }

    async fn config_map(&self, object: Object<'_>) -> Result<Option<ConfigMap>, ClusterError> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), object.namespace);
        retry::retry(&self.server, || api.get_opt(object.name))
            .await
            .map_err(|err| object.api_error("read", err))
    }

    /// Read-modify-write of the `ConfigMap`'s data: `change` gets the current object (`None` when
    /// absent) and returns the complete new data, or `None` when the change is already there
    /// (e.g. a write retried after its answer was lost had landed).
    async fn update_config_map(
        &self,
        object: Object<'_>,
        mut change: impl FnMut(
            Option<&ConfigMap>,
        ) -> Result<Option<BTreeMap<String, String>>, ClusterError>,
    ) -> Result<(), ClusterError> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), object.namespace);
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        for round in 1..=ROUNDS {
            let current = self.config_map(object).await?;
            let Some(data) = change(current.as_ref())? else {
                return Ok(());
            };
            let result = if let Some(mut map) = current {
                map.data = Some(data);
                api.replace(object.name, &params, &map).await
            } else {
                api.create(&params, &new_config_map(object, data)).await
            };
            match result {
                Ok(_) => return Ok(()),
                // Someone wrote in between (or created it first): read again and redo the change.
                Err(err) if retry::is_conflict(&err) || retry::is_transient(&err) => {
                    tokio::time::sleep(retry::backoff(round.min(3))).await;
                }
                Err(err) => return Err(object.api_error("write", err)),
            }
        }
        Err(object.contended("write", ROUNDS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn appending_keeps_the_newest_entries_in_order() {
        let mut history = Vec::new();
        for i in 0..60 {
            history = appended(history, json!({ "n": i }), HISTORY_LIMIT);
        }
        assert_eq!(history.len(), HISTORY_LIMIT);
        assert_eq!(history[0], json!({ "n": 10 }));
        assert_eq!(history[49], json!({ "n": 59 }));
    }

    #[test]
    fn an_unreadable_history_is_an_error_not_an_empty_history() {
        let map = ConfigMap {
            data: Some([(HISTORY_KEY.to_owned(), "{not json".to_owned())].into()),
            ..ConfigMap::default()
        };
        let err = parse_history(
            Some(&map),
            Object::new("configmap", "gitlab", "tagship-history-gstg"),
        )
        .expect_err("corrupt");
        assert!(
            err.to_string()
                .starts_with("key `history.json` of configmap `tagship-history-gstg` in namespace `gitlab` is unreadable"),
            "{err}"
        );
    }
}
