//! Test guest `tp-read-env`: a health check that looks for environment variables and arguments.
//!
//! Contract: reads no config. Collects `std::env::vars()` and `std::env::args()`.
//! - both empty (the sandbox passes none): `Err("no environment")`;
//! - anything found: `Ok` unhealthy, reason `environment visible: vars [NAME=value, ...];
//!   args [arg, ...]`, so a host test can assert it got `Err("no environment")`.

use tagship_plugin::health::{DeployContext, Guest, HealthReport};

struct ReadEnv;

impl Guest for ReadEnv {
    fn check(_ctx: DeployContext) -> Result<HealthReport, String> {
        let vars: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
        let args: Vec<String> = std::env::args().collect();
        if vars.is_empty() && args.is_empty() {
            Err("no environment".to_owned())
        } else {
            Ok(HealthReport::unhealthy(format!(
                "environment visible: vars [{}]; args [{}]",
                vars.join(", "),
                args.join(", ")
            )))
        }
    }
}

tagship_plugin::export_health_check!(ReadEnv);
