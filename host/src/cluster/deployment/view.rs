//! The slim views a Deployment is decoded into: what tagship reads of it, and with `OWNED` what
//! its field manager owns (from `managedFields`), without decoding the rest.

use super::apply::{Owned, image_owners, owned_by};
use super::*;

/// The parts of a Deployment tagship reads, decoded without the rest: the rollout watch decodes
/// every change of every watched Deployment, and the whole object (its `managedFields`, its
/// conditions' timestamps) costs several times more to decode than these fields. With `OWNED`
/// ([`ApplyView`]), also what tagship's field manager owns, from `managedFields`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct DeploymentView<const OWNED: bool = false> {
    #[serde(deserialize_with = "view_meta::<OWNED, _>")]
    pub(super) metadata: ViewMeta,
    pub(super) spec: Option<ViewSpec>,
    pub(super) status: Option<ViewStatus>,
}

/// A Deployment as the apply reads it: a [`DeploymentView`] with what [`FIELD_MANAGER`] owns.
pub(super) type ApplyView = DeploymentView<true>;

/// `metadata` as [`view_meta`] reads it.
#[derive(Debug, Clone, Default)]
pub(super) struct ViewMeta {
    /// Its `name`, `namespace`, `generation`, `resourceVersion` and `annotations`.
    pub(super) meta: ObjectMeta,
    /// What [`FIELD_MANAGER`] applied, from `managedFields` (read only with `OWNED`).
    pub(super) owned: Owned,
    /// Who last set each container's image (read only with `OWNED`).
    pub(super) image_owners: BTreeMap<String, ImageOwner>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ViewStatus {
    pub(super) observed_generation: Option<i64>,
    pub(super) replicas: Option<i32>,
    pub(super) updated_replicas: Option<i32>,
    pub(super) ready_replicas: Option<i32>,
    pub(super) available_replicas: Option<i32>,
    #[serde(default)]
    pub(super) conditions: Vec<ViewCondition>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct ViewCondition {
    #[serde(rename = "type")]
    pub(super) type_: String,
    pub(super) reason: Option<String>,
    pub(super) message: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct ViewSpec {
    pub(super) replicas: Option<i32>,
    #[serde(default)]
    pub(super) paused: bool,
    #[serde(default)]
    pub(super) template: ViewTemplate,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct ViewTemplate {
    pub(super) spec: Option<ViewPod>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct ViewPod {
    #[serde(default)]
    pub(super) containers: Vec<ViewContainer>,
    #[serde(default, rename = "initContainers")]
    pub(super) init_containers: Vec<ViewContainer>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct ViewContainer {
    pub(super) name: String,
    pub(super) image: Option<String>,
}

/// `metadata`, with only the fields [`LiveDeployment`] and the watch use, and with `OWNED`
/// what the apply uses of `managedFields` (skipped otherwise).
pub(super) fn view_meta<'de, const OWNED: bool, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<ViewMeta, D::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Meta<M> {
        name: Option<String>,
        namespace: Option<String>,
        generation: Option<i64>,
        resource_version: Option<String>,
        annotations: Option<BTreeMap<String, String>>,
        managed_fields: Option<M>,
    }
    impl<M> Meta<M> {
        fn object_meta(self) -> (ObjectMeta, Option<M>) {
            let meta = ObjectMeta {
                name: self.name,
                namespace: self.namespace,
                generation: self.generation,
                resource_version: self.resource_version,
                annotations: self.annotations,
                ..ObjectMeta::default()
            };
            (meta, self.managed_fields)
        }
    }
    Ok(if OWNED {
        let (meta, managed) = Meta::<Vec<ManagedEntry>>::deserialize(d)?.object_meta();
        let managed = managed.unwrap_or_default();
        let image_owners = image_owners(&managed);
        let owned = owned_by(managed, FIELD_MANAGER);
        ViewMeta {
            meta,
            owned,
            image_owners,
        }
    } else {
        let (meta, _) = Meta::<IgnoredAny>::deserialize(d)?.object_meta();
        ViewMeta {
            meta,
            owned: Owned::default(),
            image_owners: BTreeMap::new(),
        }
    })
}

/// One `managedFields` entry: who, how, and of its `fieldsV1` only what [`Owned`] needs.
#[derive(Debug, Deserialize)]
pub(super) struct ManagedEntry {
    pub(super) manager: Option<String>,
    pub(super) operation: Option<String>,
    /// When the manager last wrote (RFC 3339).
    pub(super) time: Option<String>,
    #[serde(rename = "fieldsV1")]
    pub(super) fields: Option<ManagedFields>,
}

/// `fieldsV1`: `f:metadata.f:annotations` and `f:spec.f:template.f:spec.f:containers`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ManagedFields {
    #[serde(rename = "f:metadata", default)]
    pub(super) metadata: ManagedMeta,
    #[serde(rename = "f:spec", default)]
    pub(super) spec: ManagedSpec,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ManagedMeta {
    #[serde(rename = "f:annotations", default)]
    #[allow(
        clippy::zero_sized_map_values,
        reason = "the keys of a JSON object whose values are not read"
    )]
    pub(super) annotations: BTreeMap<String, IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ManagedSpec {
    #[serde(rename = "f:template", default)]
    pub(super) template: ManagedTemplate,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ManagedTemplate {
    #[serde(rename = "f:spec", default)]
    pub(super) spec: ManagedPod,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ManagedPod {
    /// By key, e.g. `k:{"name":"registry"}`.
    #[serde(rename = "f:containers", default)]
    pub(super) containers: BTreeMap<String, ManagedContainer>,
    /// By key, as `containers`.
    #[serde(rename = "f:initContainers", default)]
    pub(super) init_containers: BTreeMap<String, ManagedContainer>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ManagedContainer {
    #[serde(rename = "f:image")]
    pub(super) image: Option<IgnoredAny>,
}

impl From<&Deployment> for ApplyView {
    fn from(d: &Deployment) -> Self {
        let spec = d.spec.as_ref().map(|spec| ViewSpec {
            replicas: spec.replicas,
            paused: spec.paused.unwrap_or(false),
            template: ViewTemplate {
                spec: spec.template.spec.as_ref().map(|pod| {
                    let view = |c: &k8s_openapi::api::core::v1::Container| ViewContainer {
                        name: c.name.clone(),
                        image: c.image.clone(),
                    };
                    ViewPod {
                        containers: pod.containers.iter().map(view).collect(),
                        init_containers: pod.init_containers.iter().flatten().map(view).collect(),
                    }
                }),
            },
        });
        let status = d.status.as_ref().map(|s| ViewStatus {
            observed_generation: s.observed_generation,
            replicas: s.replicas,
            updated_replicas: s.updated_replicas,
            ready_replicas: s.ready_replicas,
            available_replicas: s.available_replicas,
            conditions: s
                .conditions
                .iter()
                .flatten()
                .map(|c| ViewCondition {
                    type_: c.type_.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                })
                .collect(),
        });
        // The same reading of `fieldsV1` as the view's own decoding, from the decoded JSON.
        let managed: Vec<ManagedEntry> = d
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .map(|e| ManagedEntry {
                manager: e.manager.clone(),
                operation: e.operation.clone(),
                time: e.time.as_ref().map(|t| t.0.to_string()),
                fields: e
                    .fields_v1
                    .as_ref()
                    .and_then(|f| ManagedFields::deserialize(&f.0).ok()),
            })
            .collect();
        Self {
            metadata: ViewMeta {
                meta: ObjectMeta {
                    name: d.metadata.name.clone(),
                    namespace: d.metadata.namespace.clone(),
                    generation: d.metadata.generation,
                    resource_version: d.metadata.resource_version.clone(),
                    annotations: d.metadata.annotations.clone(),
                    ..ObjectMeta::default()
                },
                image_owners: image_owners(&managed),
                owned: owned_by(managed, FIELD_MANAGER),
            },
            spec,
            status,
        }
    }
}

impl<const OWNED: bool> Resource for DeploymentView<OWNED> {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind((): &()) -> Cow<'_, str> {
        Deployment::kind(&())
    }
    fn group((): &()) -> Cow<'_, str> {
        Deployment::group(&())
    }
    fn version((): &()) -> Cow<'_, str> {
        Deployment::version(&())
    }
    fn plural((): &()) -> Cow<'_, str> {
        Deployment::plural(&())
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata.meta
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata.meta
    }
}
