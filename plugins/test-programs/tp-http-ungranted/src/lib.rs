//! Test guest `tp-http-ungranted`: a health check that fetches a URL the test does not grant (or grants, to check both ways).
//!
//! Contract: reads config `url` (required). `GET url` through the host:
//! - the host refused or failed the request: `Err` with the error text, e.g.
//!   `denied: <host's reason>` (also `invalid request: `, `timeout: `,
//!   `response too large: `, `connection failed: `);
//! - a response came back (after any redirects the host followed): `Ok` healthy, `value` the
//!   status code, reason `got HTTP <status>: <first 200 bytes of the body>`.

use tagship_plugin::health::{DeployContext, Guest, HealthReport};
use tagship_plugin::http::Request;

struct HttpUngranted;

impl Guest for HttpUngranted {
    fn check(_ctx: DeployContext) -> Result<HealthReport, String> {
        let url = tagship_plugin::require_config("url")?;
        let response = Request::get(url).send().map_err(|e| e.describe())?;
        Ok(HealthReport::healthy(format!(
            "got HTTP {}: {}",
            response.status,
            response.excerpt()
        ))
        .with_value(f64::from(response.status)))
    }
}

tagship_plugin::export_health_check!(HttpUngranted);
