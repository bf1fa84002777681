//! The `[[stage]]` tables: workloads, gates, pre-checks and the bake.

use std::path::Path;
use std::time::Duration;

use toml::Spanned;
use toml::de::DeValue;

use super::plugins::read_plugin_config;
use super::{
    DEFAULT_BAKE_INTERVAL, DEFAULT_ROLLOUT_TIMEOUT, Reference, Spans, StageSpans, check_image,
    resolve, strings, unique,
};
use crate::config::duration::format_duration;
use crate::config::error::Problem;
use crate::config::names::NameRule;
use crate::config::schema::{Bake, Gate, OnUnknown, Stage, Workload};
use crate::config::section::{Section, Span, Text, article, invalid_name};

pub(super) const STAGE_KEYS: &[&str] = &[
    "name",
    "environment",
    "clusters",
    "kubeconfig",
    "namespace",
    "workloads",
    "gate",
    "pre_checks",
    "notify",
    "rollout_timeout",
    "image",
    "fail_fast",
    "restarts_allowed",
    "bake",
    "plugin_config",
];

pub(super) fn read_stages(
    top: &Section<'_, '_>,
    dir: &Path,
    spans: &mut Spans,
) -> Result<Vec<Stage>, Problem> {
    let no_stages = |span: Span| {
        Problem::new(span, "the configuration has no stages").hint(
            "add at least one `[[stage]]` with `name`, `environment`, `namespace` and `workloads`",
        )
    };
    let Some((key, value)) = top.table.get_key_value("stage") else {
        return Err(no_stages(0..0));
    };
    let DeValue::Array(items) = value.get_ref() else {
        return Err(Problem::new(
            key.span(),
            format!(
                "`stage` must be a list of tables, not {}",
                article(value.get_ref().type_str())
            ),
        )
        .hint("write each stage as `[[stage]]` (two brackets), and its bake as `[stage.bake]` after it"));
    };
    if items.is_empty() {
        return Err(no_stages(value.span()));
    }
    let mut stages = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let DeValue::Table(table) = item.get_ref() else {
            return Err(Problem::new(
                item.span(),
                format!(
                    "each stage must be a table, not {}",
                    article(item.get_ref().type_str())
                ),
            )
            .hint("write each stage as `[[stage]]` followed by its keys"));
        };
        // Name the stage in messages by its name when it has a usable one.
        let place = match table.get("name").map(Spanned::get_ref) {
            Some(DeValue::String(name)) if !name.is_empty() => format!("[[stage]] `{name}`"),
            _ => format!("[[stage]] #{}", index + 1),
        };
        let section = Section {
            text: top.text,
            table,
            span: item.span(),
            place,
        };
        let (stage, stage_spans) = read_stage(&section, dir)?;
        stages.push(stage);
        spans.stages.push(stage_spans);
    }
    Ok(stages)
}

pub(super) fn read_stage(
    section: &Section<'_, '_>,
    dir: &Path,
) -> Result<(Stage, StageSpans), Problem> {
    section.check_keys(STAGE_KEYS)?;
    let name = section.required_name("name", NameRule::Label, "\"gstg-cny\"")?;
    let of_stage = format!("of `{}`", name.get_ref());
    let environment = section.required_name("environment", NameRule::Label, "\"gstg\"")?;
    let clusters = section.string_list("clusters")?.unwrap_or_default();
    if let Some(empty) = clusters.iter().find(|c| c.get_ref().is_empty()) {
        return Err(Problem::new(
            empty.span(),
            format!("{} has an empty context name", section.what("clusters")),
        )
        .hint(
            "list kubeconfig context names, or leave `clusters` out to use the current context",
        ));
    }
    unique(&clusters, &section.what("clusters"))?;
    let kubeconfig = section
        .path("kubeconfig")?
        .map(|p| resolve(dir, p.get_ref()));
    let namespace = section.required_name("namespace", NameRule::Label, "\"gitlab\"")?;
    let workloads = read_workloads(section, &of_stage)?;
    let gate = match section.choice("gate", &["auto", "manual"])? {
        Some("manual") => Gate::Manual,
        _ => Gate::Auto,
    };
    let mut references = Vec::new();
    let pre_checks = section.string_list("pre_checks")?.unwrap_or_default();
    unique(&pre_checks, &section.what("pre_checks"))?;
    references.extend(pre_checks.iter().map(|n| Reference {
        field: "pre_checks",
        name: n.clone(),
    }));
    let notify = section.string_list("notify")?.unwrap_or_default();
    unique(&notify, &section.what("notify"))?;
    references.extend(notify.iter().map(|n| Reference {
        field: "notify",
        name: n.clone(),
    }));
    let rollout_timeout = section
        .positive_duration("rollout_timeout")?
        .unwrap_or(DEFAULT_ROLLOUT_TIMEOUT);
    let (image, fail_fast, restarts_allowed) = read_release_keys(section)?;
    let bake = match section.table("bake", format!("[stage.bake] {of_stage}"))? {
        Some(bake) => Some(read_bake(&bake, &mut references)?),
        None => None,
    };
    let plugin_config = read_plugin_config(section, &of_stage, &mut references)?;
    let spans = StageSpans {
        name: name.span(),
        environment: environment.span(),
        references,
    };
    let stage = Stage {
        name: name.into_inner(),
        environment: environment.into_inner(),
        clusters: strings(clusters),
        kubeconfig,
        namespace: namespace.into_inner(),
        workloads,
        gate,
        pre_checks: strings(pre_checks),
        notify: strings(notify),
        rollout_timeout,
        image,
        fail_fast,
        restarts_allowed,
        bake,
        plugin_config,
    };
    Ok((stage, spans))
}

/// A stage's `image`, `fail_fast` and `restarts_allowed`, with their defaults.
pub(super) fn read_release_keys(
    section: &Section<'_, '_>,
) -> Result<(Option<String>, bool, u32), Problem> {
    let image = match section.string("image")? {
        Some(image) => {
            check_image(&image, &section.what("image"))?;
            Some(image.into_inner())
        }
        None => None,
    };
    let fail_fast = section.boolean("fail_fast")?.unwrap_or(true);
    let restarts_allowed = section
        .count("restarts_allowed", 0, 1000)?
        .map_or(0, Spanned::into_inner);
    Ok((image, fail_fast, restarts_allowed))
}

pub(super) const WORKLOAD_KEYS: &[&str] = &["deployment", "containers"];

pub(super) fn read_workloads(
    section: &Section<'_, '_>,
    of_stage: &str,
) -> Result<Vec<Workload>, Problem> {
    let example = "[{ deployment = \"gitlab-registry\" }]";
    let Some(value) = section.get("workloads") else {
        return Err(section.missing("workloads", example));
    };
    let DeValue::Array(items) = value.get_ref() else {
        return Err(section
            .wrong_type("workloads", value, "a list of tables")
            .hint(format!("write `workloads = {example}`")));
    };
    if items.is_empty() {
        return Err(Problem::new(
            value.span(),
            format!("{} is empty", section.what("workloads")),
        )
        .hint(format!(
            "name at least one Deployment: `workloads = {example}`"
        )));
    }
    let mut workloads = Vec::with_capacity(items.len());
    let mut deployments: Vec<Text> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let DeValue::Table(table) = item.get_ref() else {
            let hint = match item.get_ref() {
                DeValue::String(s) => format!("write `{{ deployment = \"{s}\" }}`"),
                _ => format!("write `workloads = {example}`"),
            };
            return Err(Problem::new(
                item.span(),
                format!(
                    "workload {} {of_stage} must be a table, not {}",
                    index + 1,
                    article(item.get_ref().type_str())
                ),
            )
            .hint(hint));
        };
        let workload = Section {
            text: section.text,
            table,
            span: item.span(),
            place: format!("workload {} {of_stage}", index + 1),
        };
        workload.check_keys(WORKLOAD_KEYS)?;
        let deployment =
            workload.required_name("deployment", NameRule::Subdomain, "\"gitlab-registry\"")?;
        let containers = workload.string_list("containers")?.unwrap_or_default();
        for container in &containers {
            if !NameRule::Label.allows(container.get_ref()) {
                return Err(invalid_name(
                    container,
                    &format!("container `{}` in {}", container.get_ref(), workload.place),
                    NameRule::Label,
                ));
            }
        }
        unique(&containers, &workload.what("containers"))?;
        deployments.push(deployment.clone());
        workloads.push(Workload {
            deployment: deployment.into_inner(),
            containers: strings(containers),
        });
    }
    unique(&deployments, &format!("the workloads {of_stage}"))?;
    Ok(workloads)
}

pub(super) const BAKE_KEYS: &[&str] = &[
    "checks",
    "duration",
    "interval",
    "failure_limit",
    "consecutive_error_limit",
    "unknown",
    "initial_delay",
];

pub(super) fn read_bake(
    section: &Section<'_, '_>,
    references: &mut Vec<Reference>,
) -> Result<Bake, Problem> {
    section.check_keys(BAKE_KEYS)?;
    let checks = section.required_string_list("checks", "[\"health\"]")?;
    if checks.get_ref().is_empty() {
        return Err(Problem::new(
            checks.span(),
            format!("{} is empty", section.what("checks")),
        )
        .hint("name the health plugins to run, e.g. `checks = [\"health\"]`, or remove the bake"));
    }
    let checks = checks.into_inner();
    unique(&checks, &section.what("checks"))?;
    references.extend(checks.iter().map(|n| Reference {
        field: "checks",
        name: n.clone(),
    }));
    let Some(duration) = section.duration("duration")? else {
        return Err(section.missing("duration", "\"15m\""));
    };
    if duration.get_ref().is_zero() {
        return Err(Problem::new(
            duration.span(),
            format!("{} is zero", section.what("duration")),
        )
        .hint("bake for a while, e.g. `duration = \"15m\"`, or remove the bake"));
    }
    let interval = section.positive_duration_spanned("interval")?;
    let interval_value = interval
        .as_ref()
        .map_or(DEFAULT_BAKE_INTERVAL, |i| *i.get_ref());
    if interval_value > *duration.get_ref() {
        let (span, message) = match &interval {
            Some(i) => (
                i.span(),
                format!(
                    "{} is `{}`, longer than its `duration` `{}`",
                    section.what("interval"),
                    format_duration(interval_value),
                    format_duration(*duration.get_ref())
                ),
            ),
            None => (
                duration.span(),
                format!(
                    "{} is `{}`, shorter than the default `interval` `1m`",
                    section.what("duration"),
                    format_duration(*duration.get_ref())
                ),
            ),
        };
        return Err(Problem::new(span, message).hint(format!(
            "set `interval` to at most `{}`",
            format_duration(*duration.get_ref())
        )));
    }
    let failure_limit = section
        .count("failure_limit", 0, 10_000)?
        .map_or(0, Spanned::into_inner);
    let consecutive_error_limit = section
        .count("consecutive_error_limit", 0, 10_000)?
        .map_or(4, Spanned::into_inner);
    let unknown = match section.choice("unknown", &["fail", "pass", "wait"])? {
        Some("pass") => OnUnknown::Pass,
        Some("wait") => OnUnknown::Wait,
        _ => OnUnknown::Fail,
    };
    let initial_delay = section
        .duration("initial_delay")?
        .map_or(Duration::ZERO, Spanned::into_inner);
    Ok(Bake {
        checks: strings(checks),
        duration: duration.into_inner(),
        interval: interval_value,
        failure_limit,
        consecutive_error_limit,
        unknown,
        initial_delay,
    })
}
