//! The server-side apply body: only the images and annotations tagship owns, with the ones it
//! applied before re-sent, read from `managedFields`.

use super::view::ManagedEntry;
use super::*;

/// The apply of `images` and `annotations` to the Deployment `current`, of which tagship
/// owns `owned`; `None` when they already have these values.
pub(super) fn apply_body(
    current: &LiveDeployment,
    owned: &Owned,
    images: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> Result<Option<Value>, ClusterError> {
    if let Some(container) = images.keys().find(|c| current.image_of(c).is_none()) {
        return Err(ClusterError::UnknownContainer {
            deployment: current.name.clone(),
            namespace: current.namespace.clone(),
            container: container.clone(),
        });
    }
    // A Deployment that already runs these images is left alone, annotations included: they
    // describe the apply that set its images, which stays true (so a rollback after an apply
    // refused part-way touches only what that apply changed).
    if images.iter().all(|(c, i)| current.image_of(c) == Some(i)) {
        return Ok(None);
    }
    // What tagship sends of each list: the images asked for, and those it applied before.
    let send = |live: &BTreeMap<String, String>, owned: &BTreeSet<String>| {
        let mut send: BTreeMap<String, String> = images
            .iter()
            .filter(|(c, _)| live.contains_key(*c))
            .map(|(c, i)| (c.clone(), i.clone()))
            .collect();
        for container in owned {
            if let Some(image) = live.get(container) {
                send.entry(container.clone())
                    .or_insert_with(|| image.clone());
            }
        }
        send
    };
    let send_images = send(&current.images, &owned.containers);
    let send_init_images = send(&current.init_images, &owned.init_containers);
    let mut send_annotations = annotations.clone();
    for key in owned.annotations.iter().cloned() {
        if let Some(value) = current.annotations.get(&key) {
            send_annotations.entry(key).or_insert_with(|| value.clone());
        }
    }
    let mut body = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": current.name, "namespace": current.namespace },
    });
    if !send_annotations.is_empty() {
        body["metadata"]["annotations"] = json!(send_annotations);
    }
    let list = |images: &BTreeMap<String, String>| -> Vec<Value> {
        images
            .iter()
            .map(|(name, image)| json!({ "name": name, "image": image }))
            .collect()
    };
    let mut pod = serde_json::Map::new();
    if !send_images.is_empty() {
        pod.insert("containers".into(), json!(list(&send_images)));
    }
    if !send_init_images.is_empty() {
        pod.insert("initContainers".into(), json!(list(&send_init_images)));
    }
    if !pod.is_empty() {
        body["spec"] = json!({ "template": { "spec": pod } });
    }
    Ok(Some(body))
}

/// Container images and annotations a field manager owns through server-side apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Owned {
    pub(super) containers: BTreeSet<String>,
    pub(super) init_containers: BTreeSet<String>,
    pub(super) annotations: BTreeSet<String>,
}

/// Who owns each container's image, by `managedFields`: the entry (of any manager, applied or
/// updated) whose fields hold the container's `f:image`; when several do (shared ownership by
/// applies of the same value), the one that wrote last.
pub(super) fn image_owners(entries: &[ManagedEntry]) -> BTreeMap<String, ImageOwner> {
    let mut owners: BTreeMap<String, ImageOwner> = BTreeMap::new();
    for entry in entries {
        let Some(fields) = &entry.fields else {
            continue;
        };
        let pod = &fields.spec.template.spec;
        for (key, container) in pod.containers.iter().chain(&pod.init_containers) {
            let Some(name) = container_name(key) else {
                continue;
            };
            if container.image.is_none() {
                continue;
            }
            let owner = ImageOwner {
                manager: entry.manager.clone().unwrap_or_default(),
                time: entry.time.clone(),
            };
            let later = owners
                .get(&name)
                .is_none_or(|seen| seen.time.as_deref() < owner.time.as_deref());
            if later {
                owners.insert(name, owner);
            }
        }
    }
    owners
}

/// The container name of a `managedFields` list key, `k:{"name":"registry"}`.
pub(super) fn container_name(key: &str) -> Option<String> {
    key.strip_prefix("k:")
        .and_then(|k| serde_json::from_str::<Value>(k).ok())
        .and_then(|k| k["name"].as_str().map(str::to_owned))
}

/// What `manager` applied (operation `Apply`), by `managedFields`.
pub(super) fn owned_by(entries: Vec<ManagedEntry>, manager: &str) -> Owned {
    let mut owned = Owned::default();
    let applied = entries.into_iter().filter(|e| {
        e.manager.as_deref() == Some(manager) && e.operation.as_deref() == Some("Apply")
    });
    for fields in applied.filter_map(|e| e.fields) {
        owned.annotations.extend(
            fields
                .metadata
                .annotations
                .into_keys()
                .filter_map(|k| k.strip_prefix("f:").map(str::to_owned)),
        );
        let pod = fields.spec.template.spec;
        for (list, owned) in [
            (pod.containers, &mut owned.containers),
            (pod.init_containers, &mut owned.init_containers),
        ] {
            for (key, container) in list {
                if let Some(name) = container_name(&key)
                    && container.image.is_some()
                {
                    owned.insert(name);
                }
            }
        }
    }
    owned
}
