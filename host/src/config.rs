//! `tagship.toml`: its schema, defaults, and validation with `file:line:column` errors.
//!
//! Owns reading and checking the configuration, nothing else: no cluster, plugin or network
//! access, and no environment variables ([`parse`] is pure; [`load`] only reads the file).
//! The first problem found is reported, located at the offending key or value, with a `hint:`
//! when a fix is known (including "did you mean" for misspelt keys and names).
//!
//! ```toml
//! [component]
//! name = "registry"
//! image = "registry.example.com/gitlab-container-registry"
//! tag = "{{version}}-gitlab"
//!
//! [plugins.health]
//! source = "builtin:prometheus-health"
//!
//! [[stage]]
//! name = "gstg"
//! environment = "gstg"
//! namespace = "gitlab"
//! workloads = [{ deployment = "gitlab-registry", containers = ["registry"] }]
//! pre_checks = ["health"]
//! ```
//!
//! The field documentation of [`Config`] and the types it holds is the reference for every key.

mod duration;
mod error;
mod names;
mod read;
mod schema;
mod section;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

pub(crate) use names::quoted_list;
pub(crate) use read::closest_builtin;

pub use duration::{DurationError, format_duration, parse_duration};
pub use error::ConfigError;
pub use schema::{
    Bake, Component, Config, ContainerRef, Gate, Lock, Migration, Migrations, OnUnknown, Pin,
    Plugin, PluginLimits, PluginSource, PostMigration, Stage, Workload,
};

use error::Problem;
use read::ENVIRONMENT_PLACEHOLDER;

/// Reads and parses the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = fs_err::read_to_string(path).map_err(ConfigError::Read)?;
    parse(&text, path)
}

/// Parses and validates configuration text. `path` is where it came from: it names the file
/// in errors and is the base of relative paths inside it. Pure.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let doc =
        toml::de::DeTable::parse(text).map_err(|e| syntax_problem(text, &e).locate(text, path))?;
    let (config, spans) = read::read(text, &doc, path).map_err(|p| p.locate(text, path))?;
    validate::validate(&config, &spans).map_err(|p| p.locate(text, path))?;
    Ok(config)
}

/// Turns a TOML syntax error into a located problem, naming the key where the parser only
/// gives a span.
fn syntax_problem(text: &str, error: &toml::de::Error) -> Problem {
    let span = error.span().unwrap_or(0..0);
    let found = text.get(span.clone()).unwrap_or_default();
    let message = error.message().trim();
    if message == "duplicate key" {
        let hint = if found == "stage" {
            "write every stage as `[[stage]]` (two brackets) and its bake as `[stage.bake]` after it"
        } else {
            "a key may appear only once in a table"
        };
        return Problem::new(span, format!("duplicate key `{found}`")).hint(hint);
    }
    let hint = if message.starts_with("string values must be quoted") && !found.is_empty() {
        format!("quote it: `\"{found}\"`")
    } else {
        "see https://toml.io for TOML's syntax".to_owned()
    };
    let mut message = message.to_owned();
    if let Some(first) = message.get(..1) {
        let lower = first.to_lowercase();
        message.replace_range(..1, &lower);
    }
    Problem::new(span, format!("invalid TOML: {message}")).hint(hint)
}

/// The stages of one environment: consecutive by construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentStages<'a> {
    /// The environment's name.
    pub name: &'a str,
    /// Indices into [`Config::stages`].
    pub stages: Range<usize>,
}

impl Config {
    /// The environments in deploy order, each with the indices of its stages.
    pub fn environments(&self) -> Vec<EnvironmentStages<'_>> {
        let mut environments: Vec<EnvironmentStages<'_>> = Vec::new();
        for (index, stage) in self.stages.iter().enumerate() {
            match environments.last_mut() {
                Some(last) if last.name == stage.environment => last.stages.end = index + 1,
                _ => environments.push(EnvironmentStages {
                    name: &stage.environment,
                    stages: index..index + 1,
                }),
            }
        }
        environments
    }

    /// Whether stage `index` is the first of its environment (where pre-deployment migrations
    /// run). `false` for an index out of range.
    pub fn first_stage_of_environment(&self, index: usize) -> bool {
        match (index.checked_sub(1), self.stages.get(index)) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(previous), Some(stage)) => self.stages[previous].environment != stage.environment,
        }
    }

    /// Indices of the stages after which post-deployment migrations run, in deploy order:
    /// the stages named in `after_stage`, else the last stage of each environment; empty
    /// without `[migrations.post]`.
    pub fn post_migration_stages(&self) -> Vec<usize> {
        let Some(post) = &self.migrations.post else {
            return Vec::new();
        };
        if post.after_stage.is_empty() {
            return self
                .environments()
                .iter()
                .map(|e| e.stages.end - 1)
                .collect();
        }
        let mut indices = post
            .after_stage
            .iter()
            .filter_map(|name| self.stages.iter().position(|s| s.name == *name))
            .collect::<Vec<_>>();
        indices.sort_unstable();
        indices
    }

    /// The stage named `name`.
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// The index of the stage named `name`.
    pub fn stage_index(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.name == name)
    }

    /// The plugin named `name`.
    pub fn plugin(&self, name: &str) -> Option<&Plugin> {
        self.plugins.get(name)
    }

    /// The Lease name of `environment`: `[lock].name` with `{{environment}}` replaced.
    pub fn lease_name(&self, environment: &str) -> String {
        self.lock.name.replace(ENVIRONMENT_PLACEHOLDER, environment)
    }

    /// The namespace of `environment`'s Lease: `[lock].namespace`, else the namespace of the
    /// environment's first stage. `None` for an environment no stage has.
    pub fn lock_namespace(&self, environment: &str) -> Option<&str> {
        let first = self.stages.iter().find(|s| s.environment == environment)?;
        Some(self.lock.namespace.as_deref().unwrap_or(&first.namespace))
    }

    /// The kubeconfig file for `stage`: its own, else the top-level one; `None` means the
    /// Kubernetes client's default (`$KUBECONFIG`, else `~/.kube/config`).
    pub fn kubeconfig_for<'a>(&'a self, stage: &'a Stage) -> Option<&'a Path> {
        stage.kubeconfig.as_deref().or(self.kubeconfig.as_deref())
    }

    /// The image repository `stage` deploys: its own `image`, else `[component].image`.
    pub fn repository_for<'a>(&'a self, stage: &'a Stage) -> &'a str {
        stage.image.as_deref().unwrap_or(&self.component.image)
    }

    /// The repositories whose containers are the component's in `stage`: the component's
    /// image and the stage's own `image`, if it has one.
    pub fn component_repositories<'a>(&'a self, stage: &'a Stage) -> Vec<&'a str> {
        let mut repositories = vec![self.component.image.as_str()];
        if let Some(image) = stage.image.as_deref()
            && image != self.component.image
        {
            repositories.push(image);
        }
        repositories
    }

    /// The settings of plugin `plugin` for `stage`: `[plugins.NAME].config` with
    /// `[stage.plugin_config.NAME]` merged over it. `None` for an unknown plugin.
    pub fn plugin_settings(&self, stage: &Stage, plugin: &str) -> Option<BTreeMap<String, String>> {
        let mut settings = self.plugin(plugin)?.config.clone();
        if let Some(overrides) = stage.plugin_config.get(plugin) {
            settings.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        Some(settings)
    }
}
