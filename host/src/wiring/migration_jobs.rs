//! Migration Jobs as `KubePorts` builds them: from the workload's pod template, named per
//! component, kind, version and environment, and described for `plan`.

use std::collections::BTreeMap;

use crate::cluster::{JobSpec, KubeCluster};
use crate::config::{self, Stage};
use crate::lifecycle::StagePlan;
use crate::lifecycle::ports::{JobPreview, Migration, PortError};
use crate::version::{Version, image_repository};

use super::KubePorts;
use super::kube::port;

/// A migration Job ready to run, and what it is for people.
pub(super) struct MigrationJob {
    pub(super) cluster: KubeCluster,
    pub(super) namespace: String,
    pub(super) spec: JobSpec,
    pub(super) timeout: std::time::Duration,
    pub(super) preview: JobPreview,
}

impl KubePorts<'_> {
    /// The workload and container a migration Job runs as (`wanted`, else the first container
    /// of the component's image in the stage's first workload), with the workload's pod
    /// template.
    async fn migration_source(
        &self,
        stage: &Stage,
        cluster: &KubeCluster,
        wanted: Option<&config::ContainerRef>,
        label: &str,
    ) -> Result<(String, String, crate::cluster::PodTemplate), PortError> {
        let ns = &stage.namespace;
        let repositories = self.config.component_repositories(stage);
        let runs_component = |image: &str| repositories.contains(&image_repository(image));
        let where_ = format!(
            "`container` of [migrations.{label}] in {}",
            self.config.path.display()
        );
        let candidates: Vec<&str> = match wanted.and_then(|c| c.deployment.as_deref()) {
            Some(deployment) => vec![deployment],
            None => stage.deployment_names(),
        };
        for deployment in candidates {
            let template = cluster.pod_template(ns, deployment).await.map_err(port)?;
            let containers = pod_containers(&template, false);
            let container = match wanted {
                Some(wanted) => containers
                    .iter()
                    .find(|(name, _)| *name == wanted.container),
                None => containers.iter().find(|(_, image)| runs_component(image)),
            };
            if let Some((name, _)) = container {
                return Ok((deployment.to_owned(), name.clone(), template));
            }
            if wanted.is_none() {
                // By default the stage's first workload is the one.
                return Err(PortError::new(format!(
                    "the migration Job runs in a workload's pod, and deployment `{deployment}` in namespace `{ns}` of cluster `{}` runs no container of the component's image {}; name one with {where_}",
                    cluster.context(),
                    crate::config::quoted_list(repositories.iter().copied())
                )));
            }
        }
        let wanted = wanted.map(|c| c.container.as_str()).unwrap_or_default();
        Err(PortError::new(format!(
            "no workload of stage `{}` has a container `{wanted}` for the migration Job (in namespace `{ns}` of cluster `{}`); fix {where_}",
            stage.name,
            cluster.context()
        )))
    }

    /// The migration Job `kind` of `version` in the stage: built from the pod template of the
    /// workload container `[migrations.*].container` names (by default the first container of
    /// the component's image in the stage's first workload), in the stage's first cluster.
    /// `None` when no such migration is configured.
    pub(super) async fn migration(
        &self,
        plan: &StagePlan,
        kind: Migration,
        version: &Version,
    ) -> Result<Option<MigrationJob>, PortError> {
        let stage = self.stage(&plan.name)?;
        let (job, label) = match kind {
            Migration::Pre => (self.config.migrations.pre.as_ref(), "pre"),
            Migration::Post => (self.config.migrations.post.as_ref().map(|p| &p.job), "post"),
        };
        let Some(job) = job else {
            return Ok(None);
        };
        let cluster = self.clusters(stage).await?.remove(0);
        let ns = &stage.namespace;
        let repositories = self.config.component_repositories(stage);
        let runs_component = |image: &str| repositories.contains(&image_repository(image));
        let (deployment, container, template) = self
            .migration_source(stage, &cluster, job.container.as_ref(), label)
            .await?;
        let image = self.image(stage, version).await?;
        let init_images = pod_containers(&template, true)
            .into_iter()
            .filter(|(_, old)| runs_component(old))
            .map(|(name, _)| (name, image.clone()))
            .collect();
        let run = crate::cluster::MigrationRun {
            container: container.clone(),
            image: image.clone(),
            init_images,
            command: job.command.clone(),
            args: job.args.clone(),
            env: job.env.clone(),
            service_account: job.service_account.clone(),
        };
        let pod = crate::cluster::migration_pod(&template.spec, &run).map_err(|e| {
            PortError::new(format!(
                "cannot build the migration Job from deployment `{deployment}` in namespace `{ns}`: it {e}"
            ))
        })?;
        let labels = BTreeMap::from([
            (
                "app.kubernetes.io/managed-by".to_owned(),
                "tagship".to_owned(),
            ),
            (
                "tagship.io/component".to_owned(),
                self.config.component.name.clone(),
            ),
            ("tagship.io/migration".to_owned(), label.to_owned()),
        ]);
        // A Job pod the Deployment's selector matches would be counted (and deleted) as one of
        // its replicas, and a Service would send it traffic.
        if !template.selector.is_empty()
            && template
                .selector
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
        {
            return Err(PortError::new(format!(
                "the selector of deployment `{deployment}` in namespace `{ns}` matches the migration Job's labels {labels:?}; give the Deployment a selector of its own"
            )));
        }
        let spec = JobSpec {
            name: job_name(
                &self.config.component.name,
                label,
                version,
                &stage.environment,
            ),
            pod,
            backoff_limit: i32::try_from(job.backoff_limit).unwrap_or(0),
            labels,
        };
        let preview = describe_job(&cluster, ns, &spec, &format!("{deployment}/{container}"));
        Ok(Some(MigrationJob {
            cluster,
            namespace: ns.clone(),
            spec,
            timeout: job.timeout,
            preview,
        }))
    }
}

/// The (name, image) of each container of `template`, or of each init container.
fn pod_containers(template: &crate::cluster::PodTemplate, init: bool) -> Vec<(String, String)> {
    let list = if init { "initContainers" } else { "containers" };
    template.spec[list]
        .as_array()
        .map(|containers| {
            containers
                .iter()
                .filter_map(|c| {
                    Some((
                        c["name"].as_str()?.to_owned(),
                        c["image"].as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `spec` as people check it before it runs: where it runs, as what, with which environment
/// (names and sources, never values) and volumes.
fn describe_job(cluster: &KubeCluster, ns: &str, spec: &JobSpec, from: &str) -> JobPreview {
    let pod = &spec.pod;
    let container = &pod["containers"][0];
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut command = strings(&container["command"]);
    command.extend(strings(&container["args"]));
    let env = env_sources(&container["env"]);
    let volumes = volumes_mounted(&pod["volumes"], &container["volumeMounts"]);
    let init_containers = pod["initContainers"]
        .as_array()
        .map(|inits| {
            inits
                .iter()
                .map(|c| {
                    format!(
                        "{} ({})",
                        c["name"].as_str().unwrap_or_default(),
                        c["image"].as_str().unwrap_or_default()
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    JobPreview {
        cluster: cluster.context().to_owned(),
        namespace: ns.to_owned(),
        name: spec.name.clone(),
        from: from.to_owned(),
        image: container["image"].as_str().unwrap_or_default().to_owned(),
        command,
        init_containers,
        env,
        volumes,
        service_account: pod["serviceAccountName"].as_str().map(str::to_owned),
    }
}

/// Each env entry as `NAME` and where its value comes from (never the value).
fn env_sources(env: &serde_json::Value) -> Vec<String> {
    env.as_array()
        .map(|env| {
            env.iter()
                .map(|e| {
                    let name = e["name"].as_str().unwrap_or_default();
                    let from = &e["valueFrom"];
                    let source = if let Some(r) = from.get("secretKeyRef") {
                        format!(
                            "from secret `{}` key `{}`",
                            r["name"].as_str().unwrap_or_default(),
                            r["key"].as_str().unwrap_or_default()
                        )
                    } else if let Some(r) = from.get("configMapKeyRef") {
                        format!(
                            "from configmap `{}` key `{}`",
                            r["name"].as_str().unwrap_or_default(),
                            r["key"].as_str().unwrap_or_default()
                        )
                    } else if let Some(r) = from.get("fieldRef") {
                        format!(
                            "from field `{}`",
                            r["fieldPath"].as_str().unwrap_or_default()
                        )
                    } else if from.is_object() {
                        "from a reference".to_owned()
                    } else {
                        "(a value)".to_owned()
                    };
                    format!("{name} {source}")
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Each volume as `name (kind `source`) at mount paths` of the container's `mounts`.
fn volumes_mounted(volumes: &serde_json::Value, mounts: &serde_json::Value) -> Vec<String> {
    let mounts: Vec<(String, String)> = mounts
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|m| {
                    Some((
                        m["name"].as_str()?.to_owned(),
                        m["mountPath"].as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    volumes
        .as_array()
        .map(|volumes| {
            volumes
                .iter()
                .filter_map(|v| {
                    let name = v["name"].as_str()?;
                    let kind = v.as_object()?.keys().find(|k| *k != "name")?.clone();
                    let source = v[&kind]["name"]
                        .as_str()
                        .or_else(|| v[&kind]["secretName"].as_str())
                        .map(|s| format!(" `{s}`"))
                        .unwrap_or_default();
                    let at = mounts
                        .iter()
                        .filter(|(n, _)| n == name)
                        .map(|(_, path)| path.as_str())
                        .collect::<Vec<_>>();
                    let at = if at.is_empty() {
                        " (not mounted in the migration container)".to_owned()
                    } else {
                        format!(" at {}", at.join(", "))
                    };
                    Some(format!("{name} ({kind}{source}){at}"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A Job name that is the same for the same migration of the same version (so a re-run reuses
/// a completed Job), DNS-1123 and at most 63 characters.
fn job_name(component: &str, kind: &str, version: &Version, environment: &str) -> String {
    use sha2::Digest as _;
    let hash = hex::encode(sha2::Sha256::digest(format!(
        "{component}/{kind}/{version}/{environment}"
    )));
    let clean: String = version
        .as_str()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let mut name = format!("{component}-{kind}-migrate-{clean}");
    name.truncate(54);
    format!("{}-{}", name.trim_end_matches('-'), &hash[..8])
}
