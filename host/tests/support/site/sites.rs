//! Sites: the stage namespaces of one test with the registry's Deployment in them.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::binary::path_str;
use super::config::ConfigBuilder;
use super::environment::{kubectl_in, kubectl_ok_in, unique};
use super::namespaces::Namespace;
use super::{DEPLOYMENT, LIVE, configuration_manifests, deployment_manifest};

/// One `[[stage]]` of a site.
#[derive(Debug, Clone)]
pub struct StageSpec {
    /// `name`.
    pub name: String,
    /// `environment`.
    pub environment: String,
    /// `gate = "manual"` when true.
    pub manual: bool,
    /// `clusters`; `None`: the site's clusters ([`SiteBuilder::clusters`]).
    pub clusters: Option<Vec<String>>,
}

impl StageSpec {
    /// A stage that starts on its own.
    pub fn auto(name: &str, environment: &str) -> Self {
        StageSpec {
            name: name.to_owned(),
            environment: environment.to_owned(),
            manual: false,
            clusters: None,
        }
    }

    /// A stage behind a manual gate (`--approve NAME`).
    pub fn manual(name: &str, environment: &str) -> Self {
        StageSpec {
            manual: true,
            ..StageSpec::auto(name, environment)
        }
    }

    /// This stage spans these kubeconfig contexts instead of the site's.
    #[must_use]
    pub fn in_clusters(mut self, clusters: &[&str]) -> Self {
        self.clusters = Some(clusters.iter().map(|c| (*c).to_owned()).collect());
        self
    }
}

/// The default stages: `gstg-cny` and `gstg` (environment `gstg`), then `gprd` (environment
/// `gprd`) behind a manual gate.
pub fn default_stages() -> Vec<StageSpec> {
    vec![
        StageSpec::auto("gstg-cny", "gstg"),
        StageSpec::auto("gstg", "gstg"),
        StageSpec::manual("gprd", "gprd"),
    ]
}

/// An edit of a Deployment manifest, given the kubeconfig context it is for.
type DeploymentEdit = Box<dyn Fn(&str, &mut Value)>;

/// How to create a [`Site`]; from [`Site::builder`].
pub struct SiteBuilder {
    test: String,
    stages: Vec<StageSpec>,
    clusters: Vec<String>,
    live: Option<String>,
    edit: Option<DeploymentEdit>,
}

impl SiteBuilder {
    /// The stages, in deploy order. Default: [`default_stages`].
    #[must_use]
    pub fn stages(mut self, stages: Vec<StageSpec>) -> Self {
        self.stages = stages;
        self
    }

    /// The kubeconfig contexts of every stage without its own. Default `["local-1"]`.
    #[must_use]
    pub fn clusters(mut self, clusters: &[&str]) -> Self {
        self.clusters = clusters.iter().map(|c| (*c).to_owned()).collect();
        self
    }

    /// The version the Deployments serve when created (image tag `VERSION-gitlab`). Default
    /// [`LIVE`]. `None`: create the namespaces only, no Deployment (e.g. for `tagship lock`).
    #[must_use]
    pub fn live(mut self, version: Option<&str>) -> Self {
        self.live = version.map(str::to_owned);
        self
    }

    /// Edits every Deployment manifest before it is applied, e.g.
    /// `|d| d["spec"]["minReadySeconds"] = json!(5)`. See [`deployment_manifest`] for the base.
    #[must_use]
    pub fn deployment(mut self, edit: impl Fn(&mut Value) + 'static) -> Self {
        self.edit = Some(Box::new(move |_, d| edit(d)));
        self
    }

    /// Edits every Deployment manifest before it is applied, knowing its kubeconfig context
    /// (`local-1`, …): for a cluster that differs from the others.
    #[must_use]
    pub fn deployment_in(mut self, edit: impl Fn(&str, &mut Value) + 'static) -> Self {
        self.edit = Some(Box::new(edit));
        self
    }

    /// Creates the namespaces in every cluster of their stage and, unless `live(None)`, the
    /// Deployments, and waits until every one is rolled out.
    pub fn create(self) -> Site {
        let stages: Vec<StageSpec> = self
            .stages
            .into_iter()
            .map(|mut s| {
                s.clusters.get_or_insert_with(|| self.clusters.clone());
                s
            })
            .collect();
        let mut site = Site {
            prefix: unique(&self.test),
            dir: tempfile::tempdir().expect("temporary directory"),
            stages,
            namespaces: Vec::new(),
        };
        let places: Vec<(String, String)> = site
            .stages
            .iter()
            .flat_map(|s| {
                let ns = site.ns(&s.name);
                site.clusters(&s.name)
                    .iter()
                    .map(move |c| (c.clone(), ns.clone()))
            })
            .collect();
        for (context, ns) in &places {
            site.namespaces.push(Namespace::create(context, ns));
            let path = site.dir.path().join(format!("{context}-{ns}-config.json"));
            std::fs::write(&path, configuration_manifests(ns).to_string())
                .expect("write manifests");
            kubectl_ok_in(context, &["apply", "-f", path_str(&path)]);
        }
        let Some(live) = self.live else {
            return site;
        };
        for (context, ns) in &places {
            let mut manifest = deployment_manifest(ns, &format!("{live}-gitlab"));
            if let Some(edit) = &self.edit {
                edit(context, &mut manifest);
            }
            let path = site.dir.path().join(format!("{context}-{ns}.json"));
            std::fs::write(&path, manifest.to_string()).expect("write manifest");
            kubectl_ok_in(context, &["apply", "-f", path_str(&path)]);
        }
        for stage in site.stage_names() {
            site.wait_rolled_out(&stage);
        }
        site
    }
}

/// Stage namespaces of one test, with the registry's Deployment, deleted when dropped.
pub struct Site {
    prefix: String,
    dir: tempfile::TempDir,
    pub(super) stages: Vec<StageSpec>,
    namespaces: Vec<Namespace>,
}

impl Site {
    /// The default site: [`default_stages`] in `local-1`, serving [`LIVE`].
    /// `test` is a short lowercase prefix naming the test (e.g. `e2ea`).
    pub fn new(test: &str) -> Self {
        Site::builder(test).create()
    }

    /// A site to configure before [`SiteBuilder::create`].
    pub fn builder(test: &str) -> SiteBuilder {
        SiteBuilder {
            test: test.to_owned(),
            stages: default_stages(),
            clusters: vec!["local-1".to_owned()],
            live: Some(LIVE.to_owned()),
            edit: None,
        }
    }

    /// A directory of the test's own, deleted with the site.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The stage names in order.
    pub fn stage_names(&self) -> Vec<String> {
        self.stages.iter().map(|s| s.name.clone()).collect()
    }

    pub(super) fn spec(&self, stage: &str) -> &StageSpec {
        self.stages
            .iter()
            .find(|s| s.name == stage)
            .unwrap_or_else(|| panic!("the site has no stage `{stage}`"))
    }

    /// The namespace of `stage`: `PREFIX-STAGE` (so `gstg-cny` ends in `-cny`, which the
    /// simulator reads as environment `…-gstg`, stage `cny`).
    pub fn ns(&self, stage: &str) -> String {
        format!("{}-{stage}", self.prefix)
    }

    /// The kubeconfig contexts of `stage`.
    pub fn clusters(&self, stage: &str) -> &[String] {
        self.spec(stage).clusters.as_deref().unwrap_or_default()
    }

    /// The first cluster (context) of `stage`: `local-1` unless it lists its own.
    pub fn first_cluster(&self, stage: &str) -> &str {
        self.clusters(stage)
            .first()
            .map_or("local-1", String::as_str)
    }

    /// `[lock].namespace`: the first stage's namespace (in its first cluster).
    pub fn lock_namespace(&self) -> String {
        self.ns(&self.stages[0].name)
    }

    /// The kubeconfig context where the lock lives: the first stage's first cluster.
    pub fn lock_cluster(&self) -> String {
        self.first_cluster(&self.stages[0].name).to_owned()
    }

    /// A `tagship.toml` for this site, to adjust and [`ConfigBuilder::write`].
    pub fn config(&self) -> ConfigBuilder<'_> {
        ConfigBuilder {
            site: self,
            lock_ttl: "30s".to_owned(),
            lock_wait: "5s".to_owned(),
            rollout_timeout: "60s".to_owned(),
            kubeconfig: None,
            health: true,
            top: Vec::new(),
            notify: Vec::new(),
            stage_extra: BTreeMap::new(),
            containers: None,
            component: Vec::new(),
            in_cluster: false,
        }
    }

    /// The `registry` container's image of `stage`'s Deployment in its first cluster.
    pub fn image(&self, stage: &str) -> String {
        self.image_in(self.first_cluster(stage), stage)
    }

    /// The `registry` container's image of `stage`'s Deployment in `cluster`.
    pub fn image_in(&self, cluster: &str, stage: &str) -> String {
        self.get_in(
            cluster,
            stage,
            "jsonpath={.spec.template.spec.containers[?(@.name==\"registry\")].image}",
        )
    }

    /// The Deployment's `metadata.resourceVersion` in `stage`'s first cluster.
    pub fn resource_version(&self, stage: &str) -> String {
        self.resource_version_in(self.first_cluster(stage), stage)
    }

    /// The Deployment's `metadata.resourceVersion` in `cluster`.
    pub fn resource_version_in(&self, cluster: &str, stage: &str) -> String {
        self.get_in(cluster, stage, "jsonpath={.metadata.resourceVersion}")
    }

    /// `kubectl get deployment … -o OUTPUT` for `stage` in `cluster`.
    pub fn get_in(&self, cluster: &str, stage: &str, output: &str) -> String {
        kubectl_ok_in(
            cluster,
            &[
                "get",
                "deployment",
                DEPLOYMENT,
                "-n",
                &self.ns(stage),
                "-o",
                output,
            ],
        )
    }

    /// The Deployment of `stage` in `cluster`, as JSON.
    pub fn deployment_in(&self, cluster: &str, stage: &str) -> Value {
        serde_json::from_str(&self.get_in(cluster, stage, "json")).expect("deployment json")
    }

    /// The Deployment's annotations in `stage`'s first cluster.
    pub fn annotations(&self, stage: &str) -> BTreeMap<String, String> {
        let d = self.deployment_in(self.first_cluster(stage), stage);
        serde_json::from_value(d["metadata"]["annotations"].clone()).unwrap_or_default()
    }

    /// Whether `stage`'s rollout in `cluster` is complete by kubectl's rule
    /// (`kubectl rollout status --watch=false`), with kubectl's words.
    pub fn rollout_in(&self, cluster: &str, stage: &str) -> (bool, String) {
        let out = kubectl_ok_in(
            cluster,
            &[
                "rollout",
                "status",
                &format!("deployment/{DEPLOYMENT}"),
                "-n",
                &self.ns(stage),
                "--watch=false",
            ],
        );
        (out.contains("successfully rolled out"), out)
    }

    /// Waits (up to 60 s) until `stage` is rolled out in every cluster of it.
    pub fn wait_rolled_out(&self, stage: &str) {
        for cluster in self.clusters(stage) {
            kubectl_ok_in(
                cluster,
                &[
                    "rollout",
                    "status",
                    &format!("deployment/{DEPLOYMENT}"),
                    "-n",
                    &self.ns(stage),
                    "--timeout=60s",
                ],
            );
        }
    }

    /// The history tagship recorded for `stage` (`ConfigMap` `tagship-history-STAGE` in the
    /// stage's namespace, first cluster), oldest first; empty when there is none.
    pub fn history(&self, stage: &str) -> Vec<Value> {
        let out = kubectl_in(
            self.first_cluster(stage),
            &[
                "get",
                "configmap",
                &format!("tagship-history-{stage}"),
                "-n",
                &self.ns(stage),
                "-o",
                "jsonpath={.data.history\\.json}",
            ],
        );
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || text.trim().is_empty() {
            return Vec::new();
        }
        match serde_json::from_str::<Value>(&text).expect("history is JSON") {
            Value::Array(entries) => entries,
            other => vec![other],
        }
    }

    /// Who holds `environment`'s Lease: the `WHO` of its `WHO#RUN` holder identity (a run's
    /// identity is the holder and which run it is); empty when free.
    pub fn lease_holder_who(&self, environment: &str) -> String {
        let id = self.lease_holder(environment);
        id.rsplit_once('#')
            .map_or(id.clone(), |(who, _)| who.to_owned())
    }

    /// The `spec.holderIdentity` of `environment`'s Lease (`tagship-ENV`); empty when free or
    /// when there is no Lease yet.
    pub fn lease_holder(&self, environment: &str) -> String {
        let out = kubectl_in(
            &self.lock_cluster(),
            &[
                "get",
                "lease",
                &format!("tagship-{environment}"),
                "-n",
                &self.lock_namespace(),
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}
