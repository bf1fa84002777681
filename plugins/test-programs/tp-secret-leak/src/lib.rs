//! Test guest `tp-secret-leak`: a health check that tries to leak a secret.
//!
//! Contract: reads config `secret_name` (required) and the secret of that name.
//! - secret not granted or not set: `Err("secret `<name>` not available")`;
//! - otherwise logs `leaking <name>: <value>` at info and at error level, and returns `Ok`
//!   healthy with reason `secret value: <value>`. The host must redact the value in both.

use tagship_plugin::health::{DeployContext, Guest, HealthReport};

struct SecretLeak;

impl Guest for SecretLeak {
    fn check(_ctx: DeployContext) -> Result<HealthReport, String> {
        let name = tagship_plugin::require_config("secret_name")?;
        let value = tagship_plugin::secret(&name)
            .ok_or_else(|| format!("secret `{name}` not available"))?;
        tagship_plugin::info!("leaking {name}: {value}");
        tagship_plugin::error!("leaking {name}: {value}");
        Ok(HealthReport::healthy(format!("secret value: {value}")))
    }
}

tagship_plugin::export_health_check!(SecretLeak);
