//! Test guest `tp-alloc-churn`: a health check that allocates just under its memory limit, frees
//! it, and does it again.
//!
//! Contract: reads config `mib` (default 10) and `rounds` (default 40). Each round allocates
//! `mib` MiB, writes every byte, and frees it. Returns `Ok` healthy with `value` = rounds done:
//! allocation churn below the limit must never be mistaken for a breach.

use std::hint::black_box;

use tagship_plugin::health::{DeployContext, Guest, HealthReport};

struct AllocChurn;

fn number(key: &str, default: usize) -> Result<usize, String> {
    tagship_plugin::config(key).map_or(Ok(default), |v| {
        v.trim()
            .parse()
            .map_err(|e| format!("config `{key}` = `{v}`: {e}"))
    })
}

impl Guest for AllocChurn {
    fn check(_ctx: DeployContext) -> Result<HealthReport, String> {
        let mib = number("mib", 10)?;
        let rounds = number("rounds", 40)?;
        for round in 0..rounds {
            let block = vec![u8::try_from(round % 251).unwrap_or(1); mib << 20];
            black_box(&block);
        }
        #[allow(clippy::cast_precision_loss, reason = "a small count")]
        Ok(
            HealthReport::healthy(format!("{rounds} rounds of {mib} MiB"))
                .with_value(rounds as f64),
        )
    }
}

tagship_plugin::export_health_check!(AllocChurn);
