//! Built-in health check `http-health`: requests a URL and checks the status code and,
//! optionally, the version the service says it serves.
//!
//! Config:
//! - `url` (required): the URL to request; placeholders such as `{{stage}}` are substituted;
//! - `method` (default `GET`);
//! - `expect_status` (default `200`): comma list of codes and inclusive ranges, e.g.
//!   `200,204` or `200-299`;
//! - `version_header` (optional), e.g. `Gitlab-Container-Registry-Version`: the response must
//!   carry it, equal to the target version (`ctx.version`) ignoring a leading `v`;
//! - `version_suffix` (optional), e.g. `-gitlab`: removed from the header value before comparing.
//!
//! Grants: the URL's host. No secrets.
//!
//! A timeout or a failed connection means the service is not serving: `unhealthy`. A denied
//! host, an invalid request or an over-size response is a configuration problem: `Err`.

mod verdict;

use tagship_plugin::health::{DeployContext, Guest, HealthReport};
use tagship_plugin::http::{HttpError, Request};
use tagship_plugin::template;

use crate::verdict::{Expectation, StatusSet};

struct HttpHealth;

impl Guest for HttpHealth {
    fn check(ctx: DeployContext) -> Result<HealthReport, String> {
        let url = template::render(&tagship_plugin::require_config("url")?, &ctx)
            .map_err(|e| format!("config `url`: {e}"))?;
        let method = tagship_plugin::config_or("method", "GET")
            .trim()
            .to_ascii_uppercase();
        let expect_text = tagship_plugin::config_or("expect_status", "200");
        let expectation = Expectation {
            statuses: StatusSet::parse(&expect_text)
                .map_err(|e| format!("config `expect_status`: {e}"))?,
            status_text: expect_text.trim().to_owned(),
            version_header: tagship_plugin::config("version_header")
                .filter(|h| !h.trim().is_empty()),
            version_suffix: tagship_plugin::config("version_suffix").unwrap_or_default(),
            version: ctx.version.clone(),
        };
        match Request::new(&method, url.clone()).send() {
            Ok(response) => Ok(expectation.judge(&url, &response)),
            Err(e @ (HttpError::Timeout(_) | HttpError::Connection(_))) => Ok(
                HealthReport::unhealthy(format!("{method} {url}: {}", e.describe()))
                    .with_threshold(expectation.status_text),
            ),
            Err(e) => Err(format!("{method} {url}: {}", e.describe())),
        }
    }
}

tagship_plugin::export_health_check!(HttpHealth);
