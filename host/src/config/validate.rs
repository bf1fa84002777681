//! Cross-checks of a read configuration: unique stage names, consecutive environments,
//! plugin references, `after_stage` names, and Lease names per environment.
//!
//! Pure; points at the spans `read.rs` recorded.

use std::collections::BTreeMap;

use super::error::Problem;
use super::names::{NameRule, closest, quoted_list};
use super::read::{DEFAULT_LEASE_NAME, ENVIRONMENT_PLACEHOLDER, Spans};
use super::schema::Config;

/// The first problem found, in this order: stage names, environments, plugin references,
/// `after_stage`, Lease names.
pub(crate) fn validate(config: &Config, spans: &Spans) -> Result<(), Problem> {
    unique_stage_names(config, spans)?;
    consecutive_environments(config, spans)?;
    plugin_references(config, spans)?;
    after_stage(config, spans)?;
    lease_names(config, spans)
}

fn unique_stage_names(config: &Config, spans: &Spans) -> Result<(), Problem> {
    let mut first_seen = BTreeMap::new();
    for (index, stage) in config.stages.iter().enumerate() {
        if let Some(&earlier) = first_seen.get(stage.name.as_str()) {
            return Err(Problem::new(
                spans.stages[index].name.clone(),
                format!("stage name `{}` is used twice", stage.name),
            )
            .hint(format!(
                "stage names must be unique; the first `{}` is stage {} of {}",
                stage.name,
                earlier + 1,
                config.stages.len()
            )));
        }
        first_seen.insert(stage.name.as_str(), index);
    }
    Ok(())
}

fn consecutive_environments(config: &Config, spans: &Spans) -> Result<(), Problem> {
    for (index, pair) in config.stages.windows(2).enumerate() {
        let (previous, stage) = (&pair[0], &pair[1]);
        if previous.environment == stage.environment {
            continue;
        }
        let earlier = config.stages[..index]
            .iter()
            .rfind(|s| s.environment == stage.environment);
        if let Some(earlier) = earlier {
            return Err(Problem::new(
                spans.stages[index + 1].environment.clone(),
                format!(
                    "stages of environment `{}` must be consecutive, but stage `{}` of `{}` comes between `{}` and `{}`",
                    stage.environment,
                    previous.name,
                    previous.environment,
                    earlier.name,
                    stage.name
                ),
            )
            .hint(format!(
                "move stage `{}` next to the other stages of `{}`; an environment's stages share its lock and migrations",
                stage.name, stage.environment
            )));
        }
    }
    Ok(())
}

fn plugin_references(config: &Config, spans: &Spans) -> Result<(), Problem> {
    for (stage, stage_spans) in config.stages.iter().zip(&spans.stages) {
        for reference in &stage_spans.references {
            let name = reference.name.get_ref();
            if config.plugins.contains_key(name) {
                continue;
            }
            let field = match reference.field {
                "checks" => "`checks` of [stage.bake]".to_owned(),
                other => format!("`{other}`"),
            };
            let hint = match closest(name, config.plugins.keys().map(String::as_str)) {
                Some(suggestion) => format!("did you mean `{suggestion}`?"),
                None if config.plugins.is_empty() => {
                    format!("no plugins are defined; add `[plugins.{name}]` with a `source`")
                }
                None => format!(
                    "the plugins are {}; or add `[plugins.{name}]`",
                    quoted_list(config.plugins.keys().map(String::as_str))
                ),
            };
            let hint = if NameRule::Plugin.allows(name) {
                hint
            } else {
                format!("{hint} (plugin names use {})", NameRule::Plugin.explain())
            };
            return Err(Problem::new(
                reference.name.span(),
                format!(
                    "stage `{}` names plugin `{name}` in {field}, but there is no [plugins.{name}]",
                    stage.name
                ),
            )
            .hint(hint));
        }
    }
    Ok(())
}

fn after_stage(config: &Config, spans: &Spans) -> Result<(), Problem> {
    let Some(post) = &config.migrations.post else {
        return Ok(());
    };
    let mut environments: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, span) in post.after_stage.iter().zip(&spans.after_stage) {
        let Some(stage) = config.stage(name) else {
            let hint = match closest(name, config.stages.iter().map(|s| s.name.as_str())) {
                Some(suggestion) => format!("did you mean `{suggestion}`?"),
                None => format!(
                    "the stages are {}",
                    quoted_list(config.stages.iter().map(|s| s.name.as_str()))
                ),
            };
            return Err(Problem::new(
                span.clone(),
                format!("`after_stage` in [migrations.post] names no stage: `{name}`"),
            )
            .hint(hint));
        };
        if let Some(other) = environments.insert(&stage.environment, &stage.name) {
            return Err(Problem::new(
                span.clone(),
                format!(
                    "`after_stage` in [migrations.post] names two stages of environment `{}`: `{other}` and `{name}`",
                    stage.environment
                ),
            )
            .hint("post-deployment migrations run once per environment; keep one stage per environment"));
        }
    }
    Ok(())
}

fn lease_names(config: &Config, spans: &Spans) -> Result<(), Problem> {
    for environment in config.environments() {
        let lease = config.lease_name(environment.name);
        if NameRule::Subdomain.allows(&lease) {
            continue;
        }
        let first = environment.stages.start;
        let span = spans
            .lock_name
            .clone()
            .unwrap_or_else(|| spans.stages[first].environment.clone());
        let template = &config.lock.name;
        let default = if template == DEFAULT_LEASE_NAME {
            " (the default)"
        } else {
            ""
        };
        let hint = if template.contains(ENVIRONMENT_PLACEHOLDER) {
            format!(
                "a Lease name uses {}; check `name` in [lock] and the environment's name",
                NameRule::Subdomain.explain()
            )
        } else {
            format!("a Lease name uses {}", NameRule::Subdomain.explain())
        };
        return Err(Problem::new(
            span,
            format!(
                "lock name `{template}`{default} gives the Lease name `{lease}` for environment `{}`, which is not a valid Kubernetes name",
                environment.name
            ),
        )
        .hint(hint));
    }
    Ok(())
}
