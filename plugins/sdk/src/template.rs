//! `{{placeholder}}` substitution in configuration values (URLs, PromQL queries).
//!
//! Known placeholders: `{{stage}}`, `{{environment}}`, `{{version}}`, `{{component}}`,
//! `{{previous_version}}`, `{{app_version}}`, and `{{cluster}}` and `{{namespace}}` when every
//! workload of the context shares one (a check of one cluster of a stage) (spaces inside the braces and `-` for `_` are
//! accepted). Single braces are left alone, so PromQL label matchers such as
//! `up{job="registry"}` pass through untouched. Pure: no I/O.

use std::fmt;

use crate::bindings::tagship::plugin::types::{DeployContext, WorkloadVersion};

/// Why a template could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// `{{name}}` is not a known placeholder.
    Unknown(String),
    /// `{{name}}` is known but has no value in this context (e.g. no app version was given).
    Missing(String),
    /// A `{{` has no closing `}}`.
    Unclosed,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown(name) => write!(
                f,
                "unknown placeholder `{{{{{name}}}}}` (known: {{{{stage}}}}, {{{{environment}}}}, \
                 {{{{version}}}}, {{{{component}}}}, {{{{previous_version}}}}, {{{{app_version}}}}, \
                 {{{{cluster}}}}, {{{{namespace}}}})"
            ),
            Self::Missing(name) => write!(f, "placeholder `{{{{{name}}}}}` has no value here"),
            Self::Unclosed => f.write_str("`{{` without a closing `}}`"),
        }
    }
}

/// Renders `template`, taking the placeholders' values from `ctx`.
pub fn render(template: &str, ctx: &DeployContext) -> Result<String, TemplateError> {
    render_with(template, |name| match name {
        "stage" => Ok(ctx.stage.clone()),
        "environment" => Ok(ctx.environment.clone()),
        "version" => Ok(ctx.version.clone()),
        "component" => Ok(ctx.component.clone()),
        "previous_version" => ctx
            .previous_version
            .clone()
            .ok_or_else(|| TemplateError::Missing(name.to_owned())),
        "app_version" => ctx
            .app_version
            .clone()
            .ok_or_else(|| TemplateError::Missing(name.to_owned())),
        "cluster" => {
            shared(ctx, |w| &w.cluster).ok_or_else(|| TemplateError::Missing(name.to_owned()))
        }
        "namespace" => {
            shared(ctx, |w| &w.namespace).ok_or_else(|| TemplateError::Missing(name.to_owned()))
        }
        _ => Err(TemplateError::Unknown(name.to_owned())),
    })
}

/// The value every workload of `ctx` has for `field`, when there are workloads and they agree.
fn shared(ctx: &DeployContext, field: impl Fn(&WorkloadVersion) -> &String) -> Option<String> {
    let mut values = ctx.workloads.iter().map(field);
    let first = values.next()?;
    values.all(|v| v == first).then(|| first.clone())
}

/// Renders `template` with `value(name)` giving each placeholder's value; `name` is trimmed and
/// uses `_` (`{{ app-version }}` asks for `app_version`).
pub fn render_with(
    template: &str,
    value: impl Fn(&str) -> Result<String, TemplateError>,
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or(TemplateError::Unclosed)?;
        let name = after[..end].trim().replace('-', "_");
        out.push_str(&value(&name)?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// True when `template` mentions placeholder `name` (e.g. to explain why it is needed).
#[must_use]
pub fn mentions(template: &str, name: &str) -> bool {
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return false;
        };
        if after[..end].trim().replace('-', "_") == name {
            return true;
        }
        rest = &after[end + 2..];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> DeployContext {
        DeployContext {
            component: "registry".into(),
            version: "v3.1.0".into(),
            previous_version: Some("v3.0.0".into()),
            stage: "gstg-cny".into(),
            environment: "gstg".into(),
            pipeline_url: None,
            workloads: Vec::new(),
            app_version: None,
        }
    }

    #[test]
    fn every_context_placeholder_is_substituted() {
        assert_eq!(
            render(
                "{{component}} {{version}} {{stage}} {{environment}} {{previous_version}}",
                &ctx()
            ),
            Ok("registry v3.1.0 gstg-cny gstg v3.0.0".into())
        );
    }

    #[test]
    fn promql_label_braces_are_left_alone() {
        assert_eq!(
            render(
                r#"min(up{job="registry", env="{{environment}}", stage=~"{{ stage }}"})"#,
                &ctx()
            ),
            Ok(r#"min(up{job="registry", env="gstg", stage=~"gstg-cny"})"#.into())
        );
    }

    #[test]
    fn an_unknown_placeholder_is_an_error_naming_it() {
        let error = render("{{nope}}", &ctx()).unwrap_err();
        assert_eq!(error, TemplateError::Unknown("nope".into()));
        assert!(
            error
                .to_string()
                .starts_with("unknown placeholder `{{nope}}`")
        );
    }

    #[test]
    fn a_placeholder_without_a_value_is_missing() {
        assert_eq!(
            render("/raw/{{app-version}}/FILE", &ctx()),
            Err(TemplateError::Missing("app_version".into()))
        );
        let mut with_app = ctx();
        with_app.app_version = Some("v17.5.0".into());
        assert_eq!(
            render("/raw/{{app_version}}/FILE", &with_app),
            Ok("/raw/v17.5.0/FILE".into())
        );
    }

    #[test]
    fn cluster_and_namespace_are_those_every_workload_shares() {
        let workload = |cluster: &str| WorkloadVersion {
            cluster: cluster.into(),
            namespace: "gitlab".into(),
            workload: "registry".into(),
            container: "registry".into(),
            image: "r:v3.0.0".into(),
            version: None,
        };
        let mut one = ctx();
        one.workloads = vec![workload("gprd-a")];
        assert_eq!(
            render("{{cluster}}/{{namespace}}", &one),
            Ok("gprd-a/gitlab".into())
        );
        let mut two = ctx();
        two.workloads = vec![workload("gprd-a"), workload("gprd-b")];
        assert_eq!(
            render("{{cluster}}", &two),
            Err(TemplateError::Missing("cluster".into()))
        );
        assert_eq!(render("{{namespace}}", &two), Ok("gitlab".into()));
    }

    #[test]
    fn an_unclosed_placeholder_is_an_error() {
        assert_eq!(render("a {{stage", &ctx()), Err(TemplateError::Unclosed));
    }

    #[test]
    fn text_without_placeholders_is_unchanged() {
        assert_eq!(
            render("http://x/{a}/}}", &ctx()),
            Ok("http://x/{a}/}}".into())
        );
    }

    #[test]
    fn mentions_finds_a_placeholder_in_either_spelling() {
        assert!(mentions("x/{{ app-version }}/y", "app_version"));
        assert!(!mentions("x/{{version}}/y", "app_version"));
    }
}
