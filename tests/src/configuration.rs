//! What a container finds when it starts, resolved from its pod the way a kubelet resolves it: its
//! environment (`envFrom`, then `env` with `valueFrom` and `$(VAR)` expansion) and the files its
//! volume mounts provide (`configMap`, `secret`, `projected`, `downwardAPI` and `emptyDir` volumes,
//! `items`, `subPath`), the errors a kubelet gives when it cannot ([`resolve`], [`mount_errors`]),
//! and whether what the container's program needs is there ([`unmet_requirement`], by the
//! `requires-env=`/`requires-file=` words of [`crate::conventions`]).
//!
//! Pure: the Secrets and `ConfigMaps` come in as [`Objects`] (the kubelet stand-in reads them), and
//! the files init containers wrote into `emptyDir` volumes as [`Written`]. Only what the pod spec
//! says is modelled: no variables from the image or the runtime (`HOSTNAME`, service links), no
//! files from the image.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, KeyToPath, Pod, ResourceFieldSelector, Secret, Volume, VolumeMount,
};
use kube::ResourceExt;

use crate::conventions::Requirement;

/// The address the stand-in reports for every pod and for its node (`status.podIP`, `hostIP`).
pub const POD_IP: &str = "127.0.0.1";

/// What the pretend node offers a container without limits (`resourceFieldRef` of `limits.*`).
pub const NODE_ALLOCATABLE: [(&str, &str); 3] = [
    ("cpu", "2"),
    ("memory", "8Gi"),
    ("ephemeral-storage", "100Gi"),
];

/// The Secrets and `ConfigMaps` of a pod's namespace that it refers to, by name. A name missing here
/// does not exist.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    /// Secrets by name.
    pub secrets: BTreeMap<String, Secret>,
    /// `ConfigMaps` by name.
    pub config_maps: BTreeMap<String, ConfigMap>,
}

/// The names of the Secrets and `ConfigMaps` a pod refers to, in any container's `env` or
/// `envFrom` or in any volume.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    /// Secret names.
    pub secrets: BTreeSet<String>,
    /// `ConfigMap` names.
    pub config_maps: BTreeSet<String>,
}

/// Files init containers that ran wrote into `emptyDir` volumes: volume name → paths relative to
/// the volume's root.
pub type Written = BTreeMap<String, BTreeSet<String>>;

/// What a container finds when it starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Its environment, name → value.
    pub env: BTreeMap<String, String>,
    /// The files its volume mounts provide, by absolute path.
    pub files: BTreeSet<String>,
    /// The directories its volumes are mounted on.
    pub mount_paths: BTreeSet<String>,
}

/// The Secrets and `ConfigMaps` `pod` refers to.
pub fn references(pod: &Pod) -> References {
    let mut refs = References::default();
    for c in containers(pod) {
        for e in c.env.iter().flatten() {
            let Some(from) = &e.value_from else { continue };
            if let Some(s) = &from.secret_key_ref {
                refs.secrets.insert(s.name.clone());
            }
            if let Some(m) = &from.config_map_key_ref {
                refs.config_maps.insert(m.name.clone());
            }
        }
        for e in c.env_from.iter().flatten() {
            if let Some(s) = &e.secret_ref {
                refs.secrets.insert(s.name.clone());
            }
            if let Some(m) = &e.config_map_ref {
                refs.config_maps.insert(m.name.clone());
            }
        }
    }
    for v in volumes(pod) {
        if let Some(m) = &v.config_map {
            refs.config_maps.insert(m.name.clone());
        }
        if let Some(name) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            refs.secrets.insert(name);
        }
        let sources = v.projected.iter().flat_map(|p| p.sources.iter().flatten());
        for source in sources {
            if let Some(m) = &source.config_map {
                refs.config_maps.insert(m.name.clone());
            }
            if let Some(s) = &source.secret {
                refs.secrets.insert(s.name.clone());
            }
        }
    }
    refs
}

/// Resolves what `container` of `pod` finds when it starts, or the message of the
/// `CreateContainerConfigError` it waits with instead.
pub fn resolve(
    pod: &Pod,
    container: &Container,
    objects: &Objects,
    written: &Written,
) -> Result<Resolved, String> {
    let env = environment(pod, container, objects)?;
    let (files, mount_paths) = files(pod, container, &env, objects, written);
    Ok(Resolved {
        env,
        files,
        mount_paths,
    })
}

/// The environment of `container` as a kubelet makes it: `envFrom` sources in order (keys that are
/// not variable names skipped), then `env` entries in order, each `value` with `$(VAR)` expanded
/// from the entries before it. A missing object or key is an error unless the reference is
/// `optional`, with the kubelet's message.
pub fn environment(
    pod: &Pod,
    container: &Container,
    objects: &Objects,
) -> Result<BTreeMap<String, String>, String> {
    let namespace = pod.namespace().unwrap_or_default();
    let mut env = BTreeMap::new();
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or_default();
        let data = if let Some(s) = &from.secret_ref {
            match objects.secrets.get(&s.name) {
                Some(secret) => secret_data(secret),
                None if s.optional == Some(true) => continue,
                None => return Err(format!("secret {:?} not found", s.name)),
            }
        } else if let Some(m) = &from.config_map_ref {
            match objects.config_maps.get(&m.name) {
                Some(map) => map.data.clone().unwrap_or_default(),
                None if m.optional == Some(true) => continue,
                None => return Err(format!("configmap {:?} not found", m.name)),
            }
        } else {
            continue;
        };
        for (key, value) in data {
            let name = format!("{prefix}{key}");
            if is_env_var_name(&name) {
                env.insert(name, value);
            }
        }
    }
    for e in container.env.iter().flatten() {
        let value = match &e.value_from {
            None => expand(e.value.as_deref().unwrap_or_default(), &env),
            Some(from) => {
                if let Some(s) = &from.secret_key_ref {
                    let optional = s.optional == Some(true);
                    let Some(secret) = objects.secrets.get(&s.name) else {
                        if optional {
                            continue;
                        }
                        return Err(format!("secret {:?} not found", s.name));
                    };
                    match secret_data(secret).remove(&s.key) {
                        Some(value) => value,
                        None if optional => continue,
                        None => {
                            return Err(format!(
                                "couldn't find key {} in Secret {namespace}/{}",
                                s.key, s.name
                            ));
                        }
                    }
                } else if let Some(m) = &from.config_map_key_ref {
                    let optional = m.optional == Some(true);
                    let Some(map) = objects.config_maps.get(&m.name) else {
                        if optional {
                            continue;
                        }
                        return Err(format!("configmap {:?} not found", m.name));
                    };
                    // A kubelet reads `data` only here, not `binaryData`.
                    match map.data.as_ref().and_then(|d| d.get(&m.key)) {
                        Some(value) => value.clone(),
                        None if optional => continue,
                        None => {
                            return Err(format!(
                                "couldn't find key {} in ConfigMap {namespace}/{}",
                                m.key, m.name
                            ));
                        }
                    }
                } else if let Some(f) = &from.field_ref {
                    field_value(pod, &f.field_path)?
                } else if let Some(r) = &from.resource_field_ref {
                    resource_value(pod, container, r)?
                } else {
                    String::new()
                }
            }
        };
        env.insert(e.name.clone(), value);
    }
    Ok(env)
}

/// Expands `$(VAR)` in `input` from `env` as Kubernetes does: `$$` is a literal `$`, a reference to
/// an unknown variable and an unclosed `$(` stay as written.
pub fn expand(input: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(reference) = after.strip_prefix('(') {
            if let Some(close) = reference.find(')') {
                let name = &reference[..close];
                if let Some(value) = env.get(name) {
                    out.push_str(value);
                } else {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
                rest = &reference[close + 1..];
            } else {
                out.push_str("$(");
                rest = reference;
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The command and argument words of `container` after `$(VAR)` expansion from `env`, as the
/// program sees them.
pub fn expanded_words(container: &Container, env: &BTreeMap<String, String>) -> Vec<String> {
    container
        .command
        .iter()
        .chain(container.args.iter())
        .flatten()
        .map(|w| expand(w, env))
        .collect()
}

/// The first of `requirements` that `resolved` does not meet, as the program would say it:
/// `NAME is not set`, `open PATH: no such file or directory`, `read PATH: is a directory`.
pub fn unmet_requirement(requirements: &[Requirement<'_>], resolved: &Resolved) -> Option<String> {
    requirements.iter().find_map(|r| match r {
        Requirement::Env(name) => match resolved.env.get(*name) {
            None => Some(format!("{name} is not set")),
            Some(value) if value.is_empty() => Some(format!("{name} is set but empty")),
            Some(_) => None,
        },
        Requirement::File(path) => {
            let path = clean(path);
            if resolved.files.contains(&path) {
                None
            } else if is_directory(&path, resolved) {
                Some(format!("read {path}: is a directory"))
            } else {
                Some(format!("open {path}: no such file or directory"))
            }
        }
    })
}

fn is_directory(path: &str, resolved: &Resolved) -> bool {
    let prefix = if path == "/" {
        "/".to_owned()
    } else {
        format!("{path}/")
    };
    resolved.mount_paths.contains(path) || resolved.files.iter().any(|f| f.starts_with(&prefix))
}

/// The messages of the `FailedMount` events a kubelet gives for `pod`'s volumes that cannot be
/// set up (only volumes some container mounts are set up): `MountVolume.SetUp failed for volume
/// "NAME" : configmap "X" not found`. Empty when every volume mounts; otherwise no container starts.
pub fn mount_errors(pod: &Pod, objects: &Objects) -> Vec<String> {
    let used: BTreeSet<&str> = containers(pod)
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .map(|m| m.name.as_str())
        .collect();
    volumes(pod)
        .filter(|v| used.contains(v.name.as_str()))
        .filter_map(|v| {
            volume_files(v, objects, &Written::new())
                .err()
                .map(|e| format!("MountVolume.SetUp failed for volume {:?} : {e}", v.name))
        })
        .collect()
}

/// The files of `volume`, as paths relative to its root, or why it cannot be set up. `configMap`
/// (`data` and `binaryData`) and `secret` volumes hold every key, or with `items` each item's path
/// (a missing key is an error unless `optional`); a missing object is an error unless `optional`.
/// `projected` volumes hold the union of their sources. `downwardAPI` volumes hold their items'
/// paths, `emptyDir` volumes what init containers wrote ([`Written`]), any other kind nothing known.
pub fn volume_files(
    volume: &Volume,
    objects: &Objects,
    written: &Written,
) -> Result<BTreeSet<String>, String> {
    if let Some(m) = &volume.config_map {
        let optional = m.optional == Some(true);
        let keys = objects.config_maps.get(&m.name).map(config_map_keys);
        return payload(keys, m.items.as_deref(), optional, "configmap", &m.name);
    }
    if let Some(s) = &volume.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let keys = objects
            .secrets
            .get(&name)
            .map(|secret| secret_data(secret).into_keys().collect());
        return payload(
            keys,
            s.items.as_deref(),
            s.optional == Some(true),
            "secret",
            &name,
        );
    }
    if let Some(p) = &volume.projected {
        let mut files = BTreeSet::new();
        let mut errors = Vec::new();
        for source in p.sources.iter().flatten() {
            let result = if let Some(m) = &source.config_map {
                let keys = objects.config_maps.get(&m.name).map(config_map_keys);
                payload(
                    keys,
                    m.items.as_deref(),
                    m.optional == Some(true),
                    "configmap",
                    &m.name,
                )
            } else if let Some(s) = &source.secret {
                let keys = objects
                    .secrets
                    .get(&s.name)
                    .map(|secret| secret_data(secret).into_keys().collect());
                payload(
                    keys,
                    s.items.as_deref(),
                    s.optional == Some(true),
                    "secret",
                    &s.name,
                )
            } else if let Some(d) = &source.downward_api {
                Ok(d.items
                    .iter()
                    .flatten()
                    .map(|i| relative(&i.path))
                    .collect())
            } else if let Some(t) = &source.service_account_token {
                Ok(BTreeSet::from([relative(&t.path)]))
            } else {
                Ok(BTreeSet::new())
            };
            match result {
                Ok(more) => files.extend(more),
                Err(e) => errors.push(e),
            }
        }
        return match errors.as_slice() {
            [] => Ok(files),
            [one] => Err(one.clone()),
            many => Err(format!("[{}]", many.join(", "))),
        };
    }
    if let Some(d) = &volume.downward_api {
        return Ok(d
            .items
            .iter()
            .flatten()
            .map(|i| relative(&i.path))
            .collect());
    }
    if volume.empty_dir.is_some() {
        return Ok(written.get(&volume.name).cloned().unwrap_or_default());
    }
    Ok(BTreeSet::new())
}

/// The files `container` sees (absolute paths) and the directories its volumes are mounted on.
/// A `subPath` (or `subPathExpr`, expanded from `env`) mounts that file or directory of the volume;
/// a mount inside another hides what the outer one has there.
pub fn files(
    pod: &Pod,
    container: &Container,
    env: &BTreeMap<String, String>,
    objects: &Objects,
    written: &Written,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut mounted: Vec<(String, Vec<String>)> = Vec::new();
    let mut mount_paths = BTreeSet::new();
    for m in container.volume_mounts.iter().flatten() {
        let Some(volume) = volumes(pod).find(|v| v.name == m.name) else {
            continue;
        };
        let content = volume_files(volume, objects, written).unwrap_or_default();
        let at = clean(&m.mount_path);
        let sub = sub_path(m, env);
        let mut found = Vec::new();
        if sub.is_empty() {
            mount_paths.insert(at.clone());
            found.extend(content.iter().map(|rel| join(&at, rel)));
        } else if content.contains(&sub) {
            found.push(at.clone());
        } else {
            mount_paths.insert(at.clone());
            let inside = format!("{sub}/");
            found.extend(
                content
                    .iter()
                    .filter_map(|rel| rel.strip_prefix(&inside))
                    .map(|rel| join(&at, rel)),
            );
        }
        mounted.push((at, found));
    }
    let hidden = |owner: &str, file: &str| {
        mounted.iter().any(|(other, _)| {
            other.len() > owner.len() && (file == other || file.starts_with(&format!("{other}/")))
        })
    };
    let visible = mounted
        .iter()
        .flat_map(|(owner, found)| found.iter().filter(|f| !hidden(owner, f)).cloned())
        .collect();
    (visible, mount_paths)
}

/// Where the files an init container's program writes (`writes-file=` paths) land: for each path,
/// the `emptyDir` volume mounted deepest above it, and the path relative to that volume's root
/// (through the mount's `subPath`). Paths outside every `emptyDir` mount are lost with the container.
pub fn written_by(
    pod: &Pod,
    container: &Container,
    env: &BTreeMap<String, String>,
    paths: &[&str],
) -> Written {
    let mut written = Written::new();
    for path in paths {
        let path = clean(path);
        let deepest = container
            .volume_mounts
            .iter()
            .flatten()
            .filter_map(|m| {
                let at = clean(&m.mount_path);
                let rel = if at == "/" {
                    path.strip_prefix('/')
                } else {
                    path.strip_prefix(&format!("{at}/"))
                }?;
                Some((at.len(), m, rel.to_owned()))
            })
            .max_by_key(|(depth, _, _)| *depth);
        let Some((_, m, rel)) = deepest else { continue };
        let is_empty_dir = volumes(pod).any(|v| v.name == m.name && v.empty_dir.is_some());
        if !is_empty_dir {
            continue;
        }
        let sub = sub_path(m, env);
        let rel = if sub.is_empty() {
            rel
        } else {
            format!("{sub}/{rel}")
        };
        written.entry(m.name.clone()).or_default().insert(rel);
    }
    written
}

/// `path` made absolute and plain: no empty or `.` segments, `..` applied, no trailing `/`.
pub fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

fn relative(path: &str) -> String {
    clean(path).trim_start_matches('/').to_owned()
}

fn join(dir: &str, rel: &str) -> String {
    clean(&format!("{dir}/{rel}"))
}

fn sub_path(m: &VolumeMount, env: &BTreeMap<String, String>) -> String {
    let raw = match (&m.sub_path, &m.sub_path_expr) {
        (Some(p), _) if !p.is_empty() => p.clone(),
        (_, Some(e)) if !e.is_empty() => expand(e, env),
        _ => String::new(),
    };
    relative(&raw)
}

fn payload(
    keys: Option<BTreeSet<String>>,
    items: Option<&[KeyToPath]>,
    optional: bool,
    kind: &str,
    name: &str,
) -> Result<BTreeSet<String>, String> {
    let keys = match keys {
        Some(keys) => keys,
        None if optional => BTreeSet::new(),
        None => return Err(format!("{kind} {name:?} not found")),
    };
    let Some(items) = items.filter(|i| !i.is_empty()) else {
        return Ok(keys);
    };
    let mut files = BTreeSet::new();
    for item in items {
        if keys.contains(&item.key) {
            files.insert(relative(&item.path));
        } else if !optional {
            return Err(match kind {
                "secret" => format!("references non-existent secret key: {}", item.key),
                _ => format!("configmap references non-existent config key: {}", item.key),
            });
        }
    }
    Ok(files)
}

fn config_map_keys(map: &ConfigMap) -> BTreeSet<String> {
    let data = map.data.iter().flat_map(BTreeMap::keys);
    let binary = map.binary_data.iter().flat_map(BTreeMap::keys);
    data.chain(binary).cloned().collect()
}

/// A Secret's values as text: `data`, and `stringData` over it for an object that was not read
/// back from a server (a server stores `stringData` into `data`).
fn secret_data(secret: &Secret) -> BTreeMap<String, String> {
    let mut values: BTreeMap<String, String> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect();
    values.extend(secret.string_data.clone().unwrap_or_default());
    values
}

/// Kubernetes 1.20's rule for a variable name: `[-._a-zA-Z][-._a-zA-Z0-9]*`.
fn is_env_var_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes
        .first()
        .is_some_and(|b| b.is_ascii_alphabetic() || matches!(b, b'-' | b'.' | b'_'))
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

fn containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    pod.spec.iter().flat_map(|s| {
        s.init_containers
            .iter()
            .flatten()
            .chain(s.containers.iter())
    })
}

fn volumes(pod: &Pod) -> impl Iterator<Item = &Volume> {
    pod.spec.iter().flat_map(|s| s.volumes.iter().flatten())
}

/// The value of a `fieldRef` to the pod, with the kubelet's message for a path it does not know.
fn field_value(pod: &Pod, path: &str) -> Result<String, String> {
    let spec = pod.spec.as_ref();
    let subscripted = |prefix: &str, map: &BTreeMap<String, String>| {
        let key = path.strip_prefix(prefix)?.strip_suffix(']')?;
        let key = key.trim_matches(|c| c == '\'' || c == '"');
        Some(map.get(key).cloned().unwrap_or_default())
    };
    let whole = |map: &BTreeMap<String, String>| {
        map.iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let value = match path {
        "metadata.name" => pod.name_any(),
        "metadata.namespace" => pod.namespace().unwrap_or_default(),
        "metadata.uid" => pod.uid().unwrap_or_default(),
        "metadata.labels" => whole(pod.labels()),
        "metadata.annotations" => whole(pod.annotations()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.podIPs" | "status.hostIP" | "status.hostIPs" => POD_IP.to_owned(),
        _ => subscripted("metadata.labels[", pod.labels())
            .or_else(|| subscripted("metadata.annotations[", pod.annotations()))
            .ok_or_else(|| format!("unsupported fieldPath: {path}"))?,
    };
    Ok(value)
}

/// The value of a `resourceFieldRef`: the named container's limit or request in units of the
/// divisor, rounded up; a missing limit is the node's allocatable ([`NODE_ALLOCATABLE`]), a
/// missing request 0.
fn resource_value(
    pod: &Pod,
    container: &Container,
    selector: &ResourceFieldSelector,
) -> Result<String, String> {
    let target = match selector.container_name.as_deref() {
        Some(name) if !name.is_empty() => containers(pod)
            .find(|c| c.name == name)
            .ok_or_else(|| format!("container {name} not found"))?,
        _ => container,
    };
    let unsupported = || format!("unsupported container resource : {}", selector.resource);
    let (kind, resource) = selector.resource.split_once('.').ok_or_else(unsupported)?;
    let resources = target.resources.as_ref();
    let set = match kind {
        "limits" => resources.and_then(|r| r.limits.as_ref()),
        "requests" => resources.and_then(|r| r.requests.as_ref()),
        _ => return Err(unsupported()),
    }
    .and_then(|m| m.get(resource))
    .map(|q| q.0.clone());
    let value = match (set, kind) {
        (Some(q), _) => q,
        (None, "limits") => NODE_ALLOCATABLE
            .iter()
            .find(|(r, _)| *r == resource)
            .map(|(_, q)| (*q).to_owned())
            .ok_or_else(unsupported)?,
        (None, _) => "0".to_owned(),
    };
    let divisor = selector
        .divisor
        .as_ref()
        .map_or_else(|| "1".to_owned(), |q| q.0.clone());
    let (Some(value), Some(divisor)) = (quantity(&value), quantity(&divisor)) else {
        return Err(unsupported());
    };
    if divisor <= 0.0 {
        return Err(unsupported());
    }
    // Rounded up, as the kubelet does; CPU in milli-units first so 250m / 1 is 1.
    let ratio = if resource == "cpu" {
        ((value * 1000.0).round() / (divisor * 1000.0).round()).ceil()
    } else {
        (value / divisor).ceil()
    };
    Ok(format!("{ratio}"))
}

/// A Kubernetes quantity (`250m`, `1.5`, `64Mi`, `2G`, `1e3`) as a number.
fn quantity(q: &str) -> Option<f64> {
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '+' | '-')))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0_f64.powi(2),
        "Gi" => 1024.0_f64.powi(3),
        "Ti" => 1024.0_f64.powi(4),
        "Pi" => 1024.0_f64.powi(5),
        "Ei" => 1024.0_f64.powi(6),
        exponent => 10.0_f64.powi(
            exponent
                .strip_prefix(['e', 'E'])
                .and_then(|e| e.parse().ok())?,
        ),
    };
    Some(number * scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: &serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "registry-7d9f", "namespace": "gprd", "uid": "u-1",
                "labels": {"app": "registry"}, "annotations": {"checksum/config": "abc"}},
            "spec": spec,
        }))
        .expect("pod")
    }

    fn objects() -> Objects {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "registry-db"},
            // "hunter2" and "" in base64, as a server stores them
            "data": {"password": "aHVudGVyMg==", "empty": ""},
        }))
        .expect("secret");
        let config: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "registry"},
            "data": {"config.yml": "version: 0.1", "LOG_LEVEL": "info"},
            "binaryData": {"cert.der": "AAE="},
        }))
        .expect("configmap");
        Objects {
            secrets: BTreeMap::from([("registry-db".to_owned(), secret)]),
            config_maps: BTreeMap::from([("registry".to_owned(), config)]),
        }
    }

    fn env_of(container: &serde_json::Value) -> Result<BTreeMap<String, String>, String> {
        let p = pod(&json!({"nodeName": "tagship-node", "containers": [container]}));
        let c = p.spec.as_ref().expect("spec").containers[0].clone();
        environment(&p, &c, &objects())
    }

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn env_entries_resolve_from_secrets_config_maps_and_the_pod() {
        let c = json!({"name": "registry", "image": "r:v1", "env": [
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "registry-db", "key": "password"}}},
            {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "registry", "key": "LOG_LEVEL"}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "SUM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['checksum/config']"}}},
            {"name": "NONE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['none']"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            {"name": "PLAIN", "value": "x"},
            {"name": "EMPTY"},
        ]});
        assert_eq!(
            env_of(&c),
            Ok(vars(&[
                ("PASSWORD", "hunter2"),
                ("LEVEL", "info"),
                ("POD", "registry-7d9f"),
                ("NS", "gprd"),
                ("UID", "u-1"),
                ("APP", "registry"),
                ("SUM", "abc"),
                ("NONE", ""),
                ("NODE", "tagship-node"),
                ("SA", ""),
                ("IP", POD_IP),
                ("HOST", POD_IP),
                ("PLAIN", "x"),
                ("EMPTY", ""),
            ]))
        );
    }

    #[test]
    fn a_missing_object_or_key_is_the_kubelets_error_unless_optional() {
        let entry = |from: serde_json::Value| json!({"name": "c", "image": "r:v1", "env": [{"name": "V", "valueFrom": from}]});
        for (from, result) in [
            (
                json!({"secretKeyRef": {"name": "nope", "key": "password"}}),
                Err(r#"secret "nope" not found"#.to_owned()),
            ),
            (
                json!({"secretKeyRef": {"name": "registry-db", "key": "nope"}}),
                Err("couldn't find key nope in Secret gprd/registry-db".to_owned()),
            ),
            (
                json!({"configMapKeyRef": {"name": "nope", "key": "LOG_LEVEL"}}),
                Err(r#"configmap "nope" not found"#.to_owned()),
            ),
            (
                json!({"configMapKeyRef": {"name": "registry", "key": "nope"}}),
                Err("couldn't find key nope in ConfigMap gprd/registry".to_owned()),
            ),
            (
                // binaryData is not read for a variable, as by a kubelet
                json!({"configMapKeyRef": {"name": "registry", "key": "cert.der"}}),
                Err("couldn't find key cert.der in ConfigMap gprd/registry".to_owned()),
            ),
            (
                json!({"secretKeyRef": {"name": "nope", "key": "k", "optional": true}}),
                Ok(vars(&[])),
            ),
            (
                json!({"secretKeyRef": {"name": "registry-db", "key": "nope", "optional": true}}),
                Ok(vars(&[])),
            ),
            (
                json!({"configMapKeyRef": {"name": "nope", "key": "k", "optional": true}}),
                Ok(vars(&[])),
            ),
            (
                json!({"secretKeyRef": {"name": "registry-db", "key": "empty"}}),
                Ok(vars(&[("V", "")])),
            ),
            (
                json!({"fieldRef": {"fieldPath": "spec.nope"}}),
                Err("unsupported fieldPath: spec.nope".to_owned()),
            ),
        ] {
            assert_eq!(env_of(&entry(from.clone())), result, "{from}");
        }
    }

    #[test]
    fn env_from_sources_come_first_with_their_prefix_and_env_entries_override_them() {
        for (env_from, env, result) in [
            (
                json!([{"configMapRef": {"name": "registry"}, "prefix": "CM_"}]),
                json!([]),
                Ok(vars(&[
                    ("CM_LOG_LEVEL", "info"),
                    ("CM_config.yml", "version: 0.1"),
                ])),
            ),
            (
                json!([{"secretRef": {"name": "registry-db"}}]),
                json!([{"name": "password", "value": "override $(password)"}]),
                Ok(vars(&[("empty", ""), ("password", "override hunter2")])),
            ),
            (
                json!([{"secretRef": {"name": "nope"}}]),
                json!([]),
                Err(r#"secret "nope" not found"#.to_owned()),
            ),
            (
                json!([{"configMapRef": {"name": "nope"}}]),
                json!([]),
                Err(r#"configmap "nope" not found"#.to_owned()),
            ),
            (
                json!([{"configMapRef": {"name": "nope", "optional": true}},
                       {"secretRef": {"name": "nope", "optional": true}}]),
                json!([]),
                Ok(vars(&[])),
            ),
            (
                // "1KEY" is not a variable name: skipped, as a kubelet does (with an event)
                json!([{"configMapRef": {"name": "registry"}, "prefix": "1"}]),
                json!([]),
                Ok(vars(&[])),
            ),
        ] {
            let c = json!({"name": "c", "image": "r:v1", "envFrom": env_from, "env": env});
            assert_eq!(env_of(&c), result, "{env_from}");
        }
    }

    #[test]
    fn values_expand_references_to_earlier_entries_only() {
        let c = json!({"name": "c", "image": "r:v1", "env": [
            {"name": "HOST", "value": "db.example.com"},
            {"name": "URL", "value": "postgres://$(HOST):$(PORT)/registry"},
            {"name": "PORT", "value": "5432"},
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "registry-db", "key": "password"}}},
            {"name": "DSN", "value": "$(URL)?password=$(PASSWORD)"},
            {"name": "ESCAPED", "value": "$$(HOST) costs $$5"},
        ]});
        let env = env_of(&c).expect("env");
        assert_eq!(env["URL"], "postgres://db.example.com:$(PORT)/registry");
        assert_eq!(
            env["DSN"],
            "postgres://db.example.com:$(PORT)/registry?password=hunter2"
        );
        assert_eq!(env["ESCAPED"], "$(HOST) costs $5");
    }

    #[test]
    fn expansion_follows_kubernetes_rules() {
        let env = vars(&[("A", "a"), ("EMPTY", "")]);
        for (input, expanded) in [
            ("$(A)", "a"),
            ("x$(A)y$(A)", "xaya"),
            ("$(EMPTY)", ""),
            ("$(UNKNOWN)", "$(UNKNOWN)"),
            ("$$(A)", "$(A)"),
            ("$$$(A)", "$a"),
            ("$(A", "$(A"),
            ("$A", "$A"),
            ("a$", "a$"),
            ("$", "$"),
            ("$()", "$()"),
            ("€$(A)€", "€a€"),
        ] {
            assert_eq!(expand(input, &env), expanded, "{input}");
        }
    }

    #[test]
    fn resource_fields_resolve_to_limits_requests_or_the_nodes_allocatable() {
        let c = json!({"name": "c", "image": "r:v1",
        "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}, "requests": {"cpu": "100m"}},
        "env": [
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "MCPU", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
            {"name": "MEMREQ", "valueFrom": {"resourceFieldRef": {"resource": "requests.memory"}}},
            {"name": "DISK", "valueFrom": {"resourceFieldRef": {"resource": "limits.ephemeral-storage", "divisor": "1Gi"}}},
        ]});
        assert_eq!(
            env_of(&c),
            Ok(vars(&[
                ("CPU", "1"),
                ("MCPU", "100"),
                ("MEM", "64"),
                ("MEMREQ", "0"),
                ("DISK", "100"),
            ]))
        );
    }

    fn registry_pod(volumes: &serde_json::Value, mounts: &serde_json::Value) -> Pod {
        pod(&json!({
            "volumes": volumes,
            "containers": [{"name": "registry", "image": "r:v1", "volumeMounts": mounts}],
        }))
    }

    fn files_of(p: &Pod, written: &Written) -> BTreeSet<String> {
        let c = &p.spec.as_ref().expect("spec").containers[0];
        files(p, c, &BTreeMap::new(), &objects(), written).0
    }

    fn set(paths: &[&str]) -> BTreeSet<String> {
        paths.iter().map(|p| (*p).to_owned()).collect()
    }

    #[test]
    fn volume_mounts_provide_their_volumes_files() {
        let config = json!({"name": "config", "configMap": {"name": "registry"}});
        for (volumes, mounts, expected) in [
            (
                json!([config]),
                json!([{"name": "config", "mountPath": "/etc/docker/registry/"}]),
                set(&[
                    "/etc/docker/registry/LOG_LEVEL",
                    "/etc/docker/registry/cert.der",
                    "/etc/docker/registry/config.yml",
                ]),
            ),
            (
                json!([{"name": "config", "configMap": {"name": "registry",
                    "items": [{"key": "config.yml", "path": "conf/registry.yml"}]}}]),
                json!([{"name": "config", "mountPath": "/etc/docker/registry"}]),
                set(&["/etc/docker/registry/conf/registry.yml"]),
            ),
            (
                json!([config]),
                json!([{"name": "config", "mountPath": "/etc/docker/registry/config.yml",
                    "subPath": "config.yml"}]),
                set(&["/etc/docker/registry/config.yml"]),
            ),
            (
                json!([{"name": "config", "configMap": {"name": "registry",
                    "items": [{"key": "config.yml", "path": "conf/registry.yml"}]}}]),
                json!([{"name": "config", "mountPath": "/etc/registry", "subPath": "conf"}]),
                set(&["/etc/registry/registry.yml"]),
            ),
            (
                json!([{"name": "db", "secret": {"secretName": "registry-db"}}]),
                json!([{"name": "db", "mountPath": "/secrets"}]),
                set(&["/secrets/empty", "/secrets/password"]),
            ),
            (
                json!([{"name": "db", "secret": {"secretName": "registry-db",
                    "items": [{"key": "password", "path": "db/password"}]}}]),
                json!([{"name": "db", "mountPath": "/secrets"}]),
                set(&["/secrets/db/password"]),
            ),
            (
                json!([{"name": "all", "projected": {"sources": [
                    {"configMap": {"name": "registry", "items": [{"key": "config.yml", "path": "config.yml"}]}},
                    {"secret": {"name": "registry-db", "items": [{"key": "password", "path": "db/password"}]}},
                    {"downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                    {"configMap": {"name": "nope", "optional": true}},
                ]}}]),
                json!([{"name": "all", "mountPath": "/etc/docker/registry"}]),
                set(&[
                    "/etc/docker/registry/config.yml",
                    "/etc/docker/registry/db/password",
                    "/etc/docker/registry/labels",
                ]),
            ),
            (
                json!([{"name": "scratch", "emptyDir": {}}]),
                json!([{"name": "scratch", "mountPath": "/scratch"}]),
                set(&[]),
            ),
            (
                // the inner mount hides the outer volume's files below it
                json!([config, {"name": "db", "secret": {"secretName": "registry-db"}}]),
                json!([{"name": "config", "mountPath": "/etc"},
                       {"name": "db", "mountPath": "/etc/config.yml", "subPath": "password"}]),
                set(&["/etc/LOG_LEVEL", "/etc/cert.der", "/etc/config.yml"]),
            ),
            (json!([config]), json!([]), set(&[])),
        ] {
            assert_eq!(
                files_of(&registry_pod(&volumes, &mounts), &Written::new()),
                expected,
                "{volumes} {mounts}"
            );
        }
    }

    #[test]
    fn volumes_that_cannot_be_set_up_are_the_kubelets_failed_mount_messages() {
        let mount = json!([{"name": "v", "mountPath": "/v"}]);
        for (volume, errors) in [
            (
                json!({"name": "v", "configMap": {"name": "registry"}}),
                vec![],
            ),
            (
                json!({"name": "v", "configMap": {"name": "nope"}}),
                vec![r#"MountVolume.SetUp failed for volume "v" : configmap "nope" not found"#],
            ),
            (
                json!({"name": "v", "configMap": {"name": "nope", "optional": true}}),
                vec![],
            ),
            (
                json!({"name": "v", "configMap": {"name": "registry", "items": [{"key": "nope", "path": "x"}]}}),
                vec![
                    r#"MountVolume.SetUp failed for volume "v" : configmap references non-existent config key: nope"#,
                ],
            ),
            (
                json!({"name": "v", "secret": {"secretName": "nope"}}),
                vec![r#"MountVolume.SetUp failed for volume "v" : secret "nope" not found"#],
            ),
            (
                json!({"name": "v", "secret": {"secretName": "registry-db", "items": [{"key": "nope", "path": "x"}]}}),
                vec![
                    r#"MountVolume.SetUp failed for volume "v" : references non-existent secret key: nope"#,
                ],
            ),
            (
                json!({"name": "v", "projected": {"sources": [
                    {"configMap": {"name": "nope"}}, {"secret": {"name": "nope"}}]}}),
                vec![
                    r#"MountVolume.SetUp failed for volume "v" : [configmap "nope" not found, secret "nope" not found]"#,
                ],
            ),
            (
                json!({"name": "v", "projected": {"sources": [
                    {"configMap": {"name": "registry", "items": [{"key": "nope", "path": "x"}], "optional": true}}]}}),
                vec![],
            ),
        ] {
            let p = registry_pod(&json!([volume]), &mount);
            assert_eq!(mount_errors(&p, &objects()), errors, "{volume}");
        }
        // A volume no container mounts is not set up.
        let unused = registry_pod(
            &json!([{"name": "v", "secret": {"secretName": "nope"}}]),
            &json!([]),
        );
        assert!(mount_errors(&unused, &objects()).is_empty());
    }

    #[test]
    fn an_init_containers_writes_land_in_the_empty_dir_and_show_through_other_mounts() {
        let p = pod(&json!({
            "volumes": [{"name": "shared", "emptyDir": {}}, {"name": "config", "configMap": {"name": "registry"}}],
            "initContainers": [{"name": "configure", "image": "r:v1",
                "volumeMounts": [{"name": "shared", "mountPath": "/shared"},
                                 {"name": "shared", "mountPath": "/sub", "subPath": "conf"},
                                 {"name": "config", "mountPath": "/shared/cm"}]}],
            "containers": [
                {"name": "registry", "image": "r:v1",
                 "volumeMounts": [{"name": "shared", "mountPath": "/etc/docker/registry"}]},
                {"name": "file", "image": "r:v1",
                 "volumeMounts": [{"name": "shared", "mountPath": "/etc/registry.yml", "subPath": "conf/registry.yml"}]},
            ],
        }));
        let spec = p.spec.as_ref().expect("spec");
        let init = &spec.init_containers.as_ref().expect("init")[0];
        let written = written_by(
            &p,
            init,
            &BTreeMap::new(),
            &[
                "/shared/config.yml",
                "/sub/registry.yml",
                "/shared/cm/x",
                "/tmp/lost",
                "/shared/./a//b",
            ],
        );
        assert_eq!(
            written,
            Written::from([(
                "shared".to_owned(),
                set(&["a/b", "conf/registry.yml", "config.yml"])
            )])
        );
        let env = BTreeMap::new();
        let seen = |c: &Container| files(&p, c, &env, &objects(), &written).0;
        assert_eq!(
            seen(&spec.containers[0]),
            set(&[
                "/etc/docker/registry/a/b",
                "/etc/docker/registry/conf/registry.yml",
                "/etc/docker/registry/config.yml",
            ])
        );
        assert_eq!(seen(&spec.containers[1]), set(&["/etc/registry.yml"]));
    }

    #[test]
    fn requirements_are_checked_against_the_environment_and_the_files() {
        let resolved = Resolved {
            env: vars(&[("SET", "x"), ("EMPTY", "")]),
            files: set(&["/etc/docker/registry/config.yml"]),
            mount_paths: set(&["/etc/docker/registry"]),
        };
        for (requirement, unmet) in [
            (Requirement::Env("SET"), None),
            (Requirement::Env("UNSET"), Some("UNSET is not set")),
            (Requirement::Env("EMPTY"), Some("EMPTY is set but empty")),
            (Requirement::File("/etc/docker/registry/config.yml"), None),
            (
                Requirement::File("/etc/docker//registry/./config.yml"),
                None,
            ),
            (
                Requirement::File("/etc/docker/registry/nope.yml"),
                Some("open /etc/docker/registry/nope.yml: no such file or directory"),
            ),
            (
                Requirement::File("/etc/docker/registry"),
                Some("read /etc/docker/registry: is a directory"),
            ),
            (
                Requirement::File("/etc/docker"),
                Some("read /etc/docker: is a directory"),
            ),
        ] {
            assert_eq!(
                unmet_requirement(&[requirement], &resolved).as_deref(),
                unmet,
                "{requirement:?}"
            );
        }
        assert_eq!(
            unmet_requirement(
                &[
                    Requirement::Env("SET"),
                    Requirement::Env("A"),
                    Requirement::Env("B")
                ],
                &resolved
            )
            .as_deref(),
            Some("A is not set")
        );
    }

    #[test]
    fn references_name_every_secret_and_config_map_of_the_pod() {
        let p = pod(&json!({
            "volumes": [{"name": "a", "configMap": {"name": "cm-vol"}},
                        {"name": "b", "secret": {"secretName": "s-vol"}},
                        {"name": "c", "projected": {"sources": [{"configMap": {"name": "cm-proj"}},
                                                               {"secret": {"name": "s-proj"}}]}}],
            "initContainers": [{"name": "i", "image": "r:v1",
                "envFrom": [{"secretRef": {"name": "s-init"}}]}],
            "containers": [{"name": "c", "image": "r:v1",
                "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s-env", "key": "k"}}},
                        {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cm-env", "key": "k"}}}],
                "envFrom": [{"configMapRef": {"name": "cm-from"}}]}],
        }));
        assert_eq!(
            references(&p),
            References {
                secrets: set(&["s-env", "s-init", "s-proj", "s-vol"]),
                config_maps: set(&["cm-env", "cm-from", "cm-proj", "cm-vol"]),
            }
        );
    }

    #[test]
    fn paths_are_cleaned_like_a_file_system_would() {
        for (path, cleaned) in [
            ("/etc/docker/registry/", "/etc/docker/registry"),
            ("etc//x/./y", "/etc/x/y"),
            ("/a/b/../c", "/a/c"),
            ("/", "/"),
            ("", "/"),
        ] {
            assert_eq!(clean(path), cleaned, "{path}");
        }
    }
}
