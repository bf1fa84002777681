//! Test guest `tp-wrong-api`: a health check built against `tagship:plugin@0.2.0` (the copy of
//! the WIT in this crate's `wit/`, identical but for the version), so it exports
//! `tagship:plugin/health@0.2.0#check`. For 0.x versions a different minor is incompatible: the
//! host must refuse to load it, naming both versions.
//!
//! Contract (if it were ever called): reads no config; returns `Ok` healthy with reason
//! `tp-wrong-api: built against tagship:plugin@0.2.0`.

// Generated bindings and the generated export glue are unsafe and undocumented by nature.
#[allow(unsafe_code, missing_docs, clippy::all, clippy::pedantic)]
mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "health-check",
    });

    use super::WrongApi;
    export!(WrongApi);
}

use bindings::exports::tagship::plugin::health::Guest;
use bindings::tagship::plugin::types::{DeployContext, HealthReport, HealthStatus};

struct WrongApi;

impl Guest for WrongApi {
    fn check(_ctx: DeployContext) -> Result<HealthReport, String> {
        Ok(HealthReport {
            status: HealthStatus::Healthy,
            value: None,
            threshold: None,
            reason: "tp-wrong-api: built against tagship:plugin@0.2.0".to_owned(),
        })
    }
}
