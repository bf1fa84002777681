//! Test guest `tp-good-health`: a health check that always passes.
//!
//! Contract: reads config `greeting` (optional). Returns `Ok` healthy, `value` 1, `threshold`
//! `== 1`, reason `tp-good-health: <component> <version> on <stage>` followed by
//! `; greeting: <greeting>` when the key is set.

use tagship_plugin::health::{DeployContext, Guest, HealthReport};

struct GoodHealth;

impl Guest for GoodHealth {
    fn check(ctx: DeployContext) -> Result<HealthReport, String> {
        let mut reason = format!(
            "tp-good-health: {} {} on {}",
            ctx.component, ctx.version, ctx.stage
        );
        if let Some(greeting) = tagship_plugin::config("greeting") {
            reason.push_str("; greeting: ");
            reason.push_str(&greeting);
        }
        Ok(HealthReport::healthy(reason)
            .with_value(1.0)
            .with_threshold("== 1"))
    }
}

tagship_plugin::export_health_check!(GoodHealth);
