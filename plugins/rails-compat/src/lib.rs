//! Built-in compat check `rails-compat`: is the target registry version at least the one the
//! GitLab Rails app (at `ctx.app_version`) requires?
//!
//! Config:
//! - `min_version_url` (required): a URL whose body (trimmed) is the minimum registry version the
//!   app needs, e.g. the raw `GITLAB_CONTAINER_REGISTRY_VERSION` file of the app's repository at
//!   `{{app_ref}}` (the app's commit, or its version's tag). All placeholders are substituted
//!   (`{{app_version}}` and `{{app_ref}}` too);
//! - `registry_url` (optional): base URL of a live registry; enables the live rule;
//! - `live_rule` (default `report`): `require` makes the live rule decide too, `report` only adds
//!   its finding to the reasons.
//!
//! Grants: the hosts of both URLs. No secrets.
//!
//! Static rule: compatible iff target version >= minimum. Live rule: `GET {registry_url}/v2/`
//! (any status: a registry answers 401 without credentials but still sends its version) and
//! read header `Gitlab-Container-Registry-Version`; the live version must be >= minimum.
//! Versions compare as semver, after dropping a `-gitlab` distribution suffix (`v3.1.0-gitlab`
//! is release `v3.1.0`, not a pre-release of it).
//!
//! `Err` (undecided, the runner fails closed): the URL needs `{{app_version}}` and none was
//! given; the minimum cannot be fetched (a 404 names the URL) or is not a version; with
//! `live_rule = "require"`, the live version cannot be read.

mod rules;

use tagship_plugin::compat::{CompatReport, DeployContext, Guest};
use tagship_plugin::http::{Request, status_error};
use tagship_plugin::template::{self, TemplateError};
use tagship_plugin::url;

use crate::rules::{Inputs, LiveMode, VERSION_HEADER};

struct RailsCompat;

impl Guest for RailsCompat {
    fn check(ctx: DeployContext) -> Result<CompatReport, String> {
        let min_url = render(
            "min_version_url",
            &tagship_plugin::require_config("min_version_url")?,
            &ctx,
        )?;
        let mode = LiveMode::parse(&tagship_plugin::config_or("live_rule", "report"))?;
        let minimum = fetch_minimum(&min_url)?;
        let live = match tagship_plugin::config("registry_url").filter(|u| !u.trim().is_empty()) {
            Some(registry) => Some((
                mode,
                live_version(&render("registry_url", &registry, &ctx)?),
            )),
            None => None,
        };
        rules::decide(&Inputs {
            app: ctx.app_version.as_deref(),
            target: &ctx.version,
            minimum: &minimum,
            live,
        })
    }
}

fn render(key: &str, value: &str, ctx: &DeployContext) -> Result<String, String> {
    template::render(value, ctx).map_err(|e| match e {
        TemplateError::Missing(name) if name == "app_version" || name == "app_ref" => {
            "app version unknown: pass --app-version".to_owned()
        }
        other => format!("config `{key}`: {other}"),
    })
}

/// The trimmed body of `min_url`.
fn fetch_minimum(min_url: &str) -> Result<String, String> {
    let response = tagship_plugin::http::get(min_url)?;
    if response.status == 404 {
        return Err(format!(
            "static rule: no minimum registry version at {min_url} (HTTP 404)"
        ));
    }
    if !response.is_success() {
        return Err(format!(
            "static rule: GET {min_url} answered {}",
            status_error(response.status, &response.body)
        ));
    }
    Ok(response.text()?.trim().to_owned())
}

/// The live registry's version, or why it could not be read.
fn live_version(registry_url: &str) -> Result<String, String> {
    let probe = url::join(registry_url, "v2/");
    let response = Request::get(probe.clone())
        .send()
        .map_err(|e| format!("GET {probe}: {}", e.describe()))?;
    response
        .header(VERSION_HEADER)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            format!(
                "GET {probe} answered HTTP {} without a `{VERSION_HEADER}` header",
                response.status
            )
        })
}

tagship_plugin::export_compat_check!(RailsCompat);
