//! Built-in health check `prometheus-health`: runs a PromQL instant query against Prometheus and
//! checks the result against a pass condition.
//!
//! Config:
//! - `url` (required): Prometheus base URL, e.g. `http://prometheus:9090`;
//! - `query` (required): PromQL; `{{stage}}`, `{{environment}}`, `{{version}}`, `{{component}}`
//!   (and `{{previous_version}}`, `{{app_version}}`) are substituted, single braces are not;
//! - `pass` (default `== 1`): `== N`, `!= N`, `>= N`, `<= N`, `> N`, `< N`, or an inclusive range
//!   `MIN..MAX` with either end optional (`0.99..`, `..0.05`).
//!
//! Grants: the Prometheus host. No secrets. Calls `GET {url}/api/v1/query?query=<query>`.
//! Verdicts are described in `evaluate`; a Prometheus error or a non-2xx answer is `Err`.

mod condition;
mod evaluate;

use tagship_plugin::health::{DeployContext, Guest, HealthReport};
use tagship_plugin::{template, url};

use crate::condition::Condition;

struct PrometheusHealth;

impl Guest for PrometheusHealth {
    fn check(ctx: DeployContext) -> Result<HealthReport, String> {
        let base = tagship_plugin::require_config("url")?;
        let query_template = tagship_plugin::require_config("query")?;
        let pass = tagship_plugin::config_or("pass", "== 1");
        let condition = Condition::parse(&pass).map_err(|e| format!("config `pass`: {e}"))?;
        let query =
            template::render(&query_template, &ctx).map_err(|e| format!("config `query`: {e}"))?;
        let request_url = query_url(&base, &query);
        let response = tagship_plugin::http::get(&request_url)?;
        let series = evaluate::parse_response(response.status, &response.body)
            .map_err(|e| format!("{e} (query: `{query}`)"))?;
        Ok(evaluate::judge(&query, pass.trim(), &condition, &series))
    }
}

/// `{base}/api/v1/query?query=<query, percent-encoded>`.
fn query_url(base: &str, query: &str) -> String {
    format!(
        "{}?query={}",
        url::join(base, "api/v1/query"),
        url::encode_component(query)
    )
}

tagship_plugin::export_health_check!(PrometheusHealth);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_goes_url_encoded_into_the_query_endpoint() {
        assert_eq!(
            query_url("http://prometheus:9090/", r#"min(up{job="registry"})"#),
            "http://prometheus:9090/api/v1/query?query=min%28up%7Bjob%3D%22registry%22%7D%29"
        );
    }
}
