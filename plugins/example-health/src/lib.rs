//! Example plugin `example-health`: a custom health check that reads one field of a JSON
//! endpoint. Copy this crate to start your own; `plugins/README.md` walks through it.
//!
//! Config:
//! - `url` (required): a JSON endpoint, e.g. `https://registry.{{environment}}.example.com/health`
//!   (the host substitutes `{{stage}}`, `{{environment}}`, `{{version}}`, `{{component}}`);
//! - `field` (default `status`): where the value is, dots for nesting (`checks.database`);
//! - `expect` (default `ok`): the value that means healthy.
//!
//! Grants: the endpoint's host (`--allow-host` or `allow_hosts` in `tagship.toml`).

// Everything a health check needs is in the SDK's `health` module: the context it gets, the
// report it returns, and the trait it implements.
use tagship_plugin::health::{DeployContext, Guest, HealthReport};
// The SDK re-exports `serde_json`, so a plugin needs no JSON dependency of its own.
use tagship_plugin::serde_json::Value;

// The plugin is a type (it has no state: each check runs in a fresh sandbox).
struct ExampleHealth;

impl Guest for ExampleHealth {
    // Called once per check with the deploy context: what is deployed, where.
    //
    // Return `Ok(report)` with a verdict: healthy, unhealthy or unknown (could not decide).
    // Return `Err(text)` when the check itself could not run (bad config, host not granted):
    // tagship treats that as a failed check, so a broken check never lets a deploy through.
    fn check(ctx: DeployContext) -> Result<HealthReport, String> {
        // `require_config` turns a missing key into an error telling the operator where to set
        // it; `?` returns that error from `check`.
        let url = tagship_plugin::require_config("url")?;
        let field = tagship_plugin::config_or("field", "status");
        let expect = tagship_plugin::config_or("expect", "ok");

        // HTTP goes through the host, which only lets it reach granted hosts. `get` errors name
        // the method and URL, e.g. "GET https://...: denied: host ... is not granted".
        let response = tagship_plugin::http::get(&url)?;

        // A service that answers with an error status is unhealthy: that is a verdict, not a
        // failure of the check.
        if !response.is_success() {
            return Ok(HealthReport::unhealthy(format!(
                "{url} answered HTTP {} on {}: {}",
                response.status,
                ctx.stage,
                response.excerpt()
            )));
        }

        // Keep the decision in a plain function: it can be unit-tested with `cargo test`.
        Ok(judge(&response.json()?, &field, &expect))
    }
}

/// The verdict for a JSON `body`: healthy when the value at `field` equals `expect`.
fn judge(body: &Value, field: &str, expect: &str) -> HealthReport {
    // `pointer` takes a JSON pointer: `checks.database` becomes `/checks/database`.
    let pointer = format!("/{}", field.replace('.', "/"));
    match body.pointer(&pointer) {
        // No such field: the endpoint did not say, so the check cannot decide.
        None => HealthReport::unknown(format!("the response has no `{field}` field")),
        Some(value) => {
            // Compare strings without their JSON quotes, and anything else (numbers,
            // booleans) as written.
            let actual = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned);
            // `with_threshold` shows the pass condition next to the verdict in tagship's output.
            let report = if actual == expect {
                HealthReport::healthy(format!("`{field}` is `{actual}`"))
            } else {
                HealthReport::unhealthy(format!("`{field}` is `{actual}`, expected `{expect}`"))
            };
            report.with_threshold(format!("{field} == {expect}"))
        }
    }
}

// Generates the component's export: this line is what makes the crate a health-check plugin.
tagship_plugin::export_health_check!(ExampleHealth);

// Unit tests run on your machine, not in wasm: `cargo test -p example-health`.
#[cfg(test)]
mod tests {
    use super::*;
    use tagship_plugin::health::HealthStatus;
    use tagship_plugin::serde_json::json;

    #[test]
    fn the_expected_value_is_healthy() {
        let report = judge(&json!({"status": "ok"}), "status", "ok");
        assert_eq!(report.status, HealthStatus::Healthy);
    }

    #[test]
    fn another_value_is_unhealthy_and_says_which() {
        let report = judge(
            &json!({"checks": {"database": "down"}}),
            "checks.database",
            "up",
        );
        assert_eq!(report.status, HealthStatus::Unhealthy);
        assert_eq!(report.reason, "`checks.database` is `down`, expected `up`");
    }

    #[test]
    fn a_missing_field_is_unknown() {
        let report = judge(&json!({}), "status", "ok");
        assert_eq!(report.status, HealthStatus::Unknown);
    }

    #[test]
    fn numbers_and_booleans_compare_as_written() {
        assert_eq!(
            judge(&json!({"up": true}), "up", "true").status,
            HealthStatus::Healthy
        );
        assert_eq!(
            judge(&json!({"n": 1}), "n", "1").status,
            HealthStatus::Healthy
        );
    }
}
