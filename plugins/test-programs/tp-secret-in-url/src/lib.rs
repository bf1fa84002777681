//! Test guest `tp-secret-in-url`: a health check that sends a granted secret in a URL.
//!
//! Contract: reads config `url` and `secret_name` (required) and the secret. `GET
//! {url}?token={secret}`; on a host error returns `Err` with the error text (which names the
//! URL, so the secret: the host must redact it), on a response `Ok` healthy with reason
//! `sent to {url}?token={secret}` (redacted by the host too). Sending the secret to a granted
//! host cannot be prevented; only logs and errors are protected.

use tagship_plugin::health::{DeployContext, Guest, HealthReport};
use tagship_plugin::http::Request;

struct SecretInUrl;

impl Guest for SecretInUrl {
    fn check(_ctx: DeployContext) -> Result<HealthReport, String> {
        let url = tagship_plugin::require_config("url")?;
        let name = tagship_plugin::require_config("secret_name")?;
        let value = tagship_plugin::secret(&name)
            .ok_or_else(|| format!("secret `{name}` not available"))?;
        let target = format!("{url}?token={value}");
        tagship_plugin::info!("fetching {target}");
        let response = Request::get(target.clone())
            .send()
            .map_err(|e| e.describe())?;
        Ok(HealthReport::healthy(format!(
            "sent to {target}: HTTP {}",
            response.status
        )))
    }
}

tagship_plugin::export_health_check!(SecretInUrl);
