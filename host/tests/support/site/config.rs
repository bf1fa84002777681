//! The `tagship.toml` of a site.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::binary::path_str;
use super::environment::env;
use super::sites::Site;
use super::{DEPLOYMENT, IMAGE};

/// A `tagship.toml` for a [`Site`]; from [`Site::config`].
///
/// Defaults: `kubeconfig` = `$TAGSHIP_KUBECONFIG` (see [`ConfigBuilder::kubeconfig`]); component `registry`, image [`IMAGE`], tag
/// `{{version}}-gitlab`; `[lock]` in [`Site::lock_namespace`], ttl `30s`, wait `5s`; plugin
/// `health` (`builtin:prometheus-health` against `$TAGSHIP_PROMETHEUS_URL`, pass `== 1`) with, per
/// stage, the query `min(gitlab_deployment_health:service{namespace="NS"})`; every stage with
/// its clusters, namespace, workload `gitlab-registry` (its containers of the component's image by default: `configure`
/// and `registry`), gate and
/// `rollout_timeout = "60s"`. No bake, no pre-checks, no migrations, no notifiers.
pub struct ConfigBuilder<'a> {
    pub(super) site: &'a Site,
    pub(super) lock_ttl: String,
    pub(super) lock_wait: String,
    pub(super) rollout_timeout: String,
    pub(super) kubeconfig: Option<PathBuf>,
    pub(super) health: bool,
    pub(super) top: Vec<String>,
    pub(super) notify: Vec<String>,
    pub(super) stage_extra: BTreeMap<String, Vec<String>>,
    pub(super) containers: Option<Vec<String>>,
    pub(super) component: Vec<String>,
    pub(super) in_cluster: bool,
}

impl ConfigBuilder<'_> {
    /// Extra keys of `[component]`, e.g. `pin = "digest"`.
    #[must_use]
    pub fn component(mut self, keys: &str) -> Self {
        self.component.push(keys.to_owned());
        self
    }

    /// No `kubeconfig` and no `clusters`: the credentials are whatever tagship finds (a pod's
    /// service account, for the in-cluster test).
    #[must_use]
    pub fn in_cluster(mut self) -> Self {
        self.in_cluster = true;
        self
    }

    /// `containers` of every workload (default: none named, so the component's containers).
    #[must_use]
    pub fn containers(mut self, names: &[&str]) -> Self {
        self.containers = Some(names.iter().map(|n| (*n).to_owned()).collect());
        self
    }

    /// `[lock].ttl` (at least `15s`).
    #[must_use]
    pub fn lock_ttl(mut self, ttl: &str) -> Self {
        ttl.clone_into(&mut self.lock_ttl);
        self
    }

    /// `[lock].wait`: how long a deploy waits for someone else's lock.
    #[must_use]
    pub fn lock_wait(mut self, wait: &str) -> Self {
        wait.clone_into(&mut self.lock_wait);
        self
    }

    /// `rollout_timeout` of every stage.
    #[must_use]
    pub fn rollout_timeout(mut self, timeout: &str) -> Self {
        timeout.clone_into(&mut self.rollout_timeout);
        self
    }

    /// `kubeconfig`: this file instead of `$TAGSHIP_KUBECONFIG` (e.g. one whose server is a
    /// fault-injecting proxy). Its contexts must have the site's cluster names.
    #[must_use]
    pub fn kubeconfig(mut self, path: &Path) -> Self {
        self.kubeconfig = Some(path.to_owned());
        self
    }

    /// Leaves out the `health` plugin and its per-stage query.
    #[must_use]
    pub fn without_health(mut self) -> Self {
        self.health = false;
        self
    }

    /// Top-level TOML appended after `[plugins.health]`: whole tables such as
    /// `[migrations.post]` or `[plugins.NAME]`.
    #[must_use]
    pub fn toml(mut self, text: &str) -> Self {
        self.top.push(text.to_owned());
        self
    }

    /// `[migrations.pre]` with this `command` (the stand-in fails the Job when the image tag,
    /// command or arguments contain `fail`).
    #[must_use]
    pub fn pre_migration(self, command: &[&str]) -> Self {
        let text = format!("[migrations.pre]\ncommand = {}\n", toml_list(command));
        self.toml(&text)
    }

    /// `[migrations.post]` with this `command`, after the default stages (the last of each
    /// environment) or after `after_stage`.
    #[must_use]
    pub fn post_migration(self, command: &[&str], after_stage: Option<&str>) -> Self {
        let mut text = format!("[migrations.post]\ncommand = {}\n", toml_list(command));
        if let Some(stage) = after_stage {
            let _ = writeln!(text, "after_stage = \"{stage}\"");
        }
        self.toml(&text)
    }

    /// Plugin `name` = `builtin:webhook-notify` that POSTs each event to `url` (a loopback test
    /// server; its `host:port` is granted), notified by every stage.
    #[must_use]
    pub fn webhook(mut self, name: &str, url: &str) -> Self {
        let authority = url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        self.notify.push(name.to_owned());
        self.toml(&format!(
            "[plugins.{name}]\nsource = \"builtin:webhook-notify\"\nallow_hosts = [\"{authority}\"]\nconfig = {{ url = \"{url}\" }}\n"
        ))
    }

    /// Adds notifier `name` (defined with [`ConfigBuilder::toml`]) to every stage's `notify`.
    #[must_use]
    pub fn notify(mut self, name: &str) -> Self {
        self.notify.push(name.to_owned());
        self
    }

    /// Extra TOML inside `stage`'s `[[stage]]`: keys first, then its sub-tables, e.g.
    /// `pre_checks = ["health"]` or `[stage.bake]\nchecks = ["health"]\nduration = "40s"`.
    /// Do not repeat a key the builder writes (see the type's docs).
    #[must_use]
    pub fn stage(mut self, stage: &str, text: &str) -> Self {
        self.site.spec(stage);
        self.stage_extra
            .entry(stage.to_owned())
            .or_default()
            .push(text.to_owned());
        self
    }

    /// `[stage.bake]` of `stage` with these keys, e.g. `checks = ["health"]\nduration = "40s"`.
    #[must_use]
    pub fn bake(self, stage: &str, keys: &str) -> Self {
        self.stage(stage, &format!("[stage.bake]\n{keys}\n"))
    }

    /// The configuration's text.
    pub fn text(&self) -> String {
        let site = self.site;
        let mut text = String::new();
        if !self.in_cluster {
            let _ = writeln!(
                text,
                "kubeconfig = \"{}\"\n",
                self.kubeconfig
                    .as_ref()
                    .map_or_else(|| env("TAGSHIP_KUBECONFIG"), |p| path_str(p).to_owned())
            );
        }
        let _ = write!(
            text,
            r#"[component]
name = "registry"
image = "{IMAGE}"
tag = "{{{{version}}}}-gitlab"
{component}

[lock]
namespace = "{lock_ns}"
ttl = "{ttl}"
wait = "{wait}"
"#,
            component = self.component.join("\n"),
            lock_ns = site.lock_namespace(),
            ttl = self.lock_ttl,
            wait = self.lock_wait,
        );
        if self.health {
            let prometheus = env("TAGSHIP_PROMETHEUS_URL");
            let grant = prometheus.trim_start_matches("http://");
            let _ = write!(
                text,
                "\n[plugins.health]\nsource = \"builtin:prometheus-health\"\nallow_hosts = [\"{grant}\"]\nconfig = {{ url = \"{prometheus}\", pass = \"== 1\" }}\n"
            );
        }
        for top in &self.top {
            text.push('\n');
            text.push_str(top);
        }
        for stage in &site.stages {
            let ns = site.ns(&stage.name);
            let clusters: Vec<&str> = site
                .clusters(&stage.name)
                .iter()
                .map(String::as_str)
                .collect();
            let _ = write!(
                text,
                r#"
[[stage]]
name = "{name}"
environment = "{environment}"
{clusters}namespace = "{ns}"
workloads = [{{ deployment = "{DEPLOYMENT}"{containers} }}]
rollout_timeout = "{timeout}"
"#,
                name = stage.name,
                environment = stage.environment,
                clusters = if self.in_cluster {
                    String::new()
                } else {
                    format!("clusters = {}\n", toml_list(&clusters))
                },
                timeout = self.rollout_timeout,
                containers = self
                    .containers
                    .as_ref()
                    .map(|c| {
                        let names: Vec<&str> = c.iter().map(String::as_str).collect();
                        format!(", containers = {}", toml_list(&names))
                    })
                    .unwrap_or_default(),
            );
            if stage.manual {
                text.push_str("gate = \"manual\"\n");
            }
            if !self.notify.is_empty() {
                let names: Vec<&str> = self.notify.iter().map(String::as_str).collect();
                let _ = writeln!(text, "notify = {}", toml_list(&names));
            }
            for extra in self.stage_extra.get(&stage.name).into_iter().flatten() {
                text.push_str(extra);
                text.push('\n');
            }
            if self.health {
                let _ = writeln!(
                    text,
                    "[stage.plugin_config.health]\nquery = 'min(gitlab_deployment_health:service{{namespace=\"{ns}\"}})'"
                );
            }
        }
        text
    }

    /// Writes the configuration to `tagship.toml` in the site's directory.
    pub fn write(self) -> PathBuf {
        self.write_as("tagship.toml")
    }

    /// Writes the configuration to `file_name` in the site's directory (several per test).
    pub fn write_as(self, file_name: &str) -> PathBuf {
        let path = self.site.dir().join(file_name);
        std::fs::write(&path, self.text()).expect("write tagship.toml");
        path
    }
}

/// `["a", "b"]`, TOML-quoted.
pub fn toml_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|i| serde_json::Value::String((*i).to_owned()).to_string())
        .collect();
    format!("[{}]", quoted.join(", "))
}
