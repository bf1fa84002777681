//! Test guest `tp-compat-ok`: a compat check that needs only a known app version.
//!
//! Contract: reads no config. Compatible iff `ctx.app_version` is some; one reason,
//! `app version <v> is known` or `app version unknown`.

use tagship_plugin::compat::{CompatReport, DeployContext, Guest};

struct CompatOk;

impl Guest for CompatOk {
    fn check(ctx: DeployContext) -> Result<CompatReport, String> {
        Ok(match ctx.app_version {
            Some(app) => CompatReport::compatible(vec![format!("app version {app} is known")]),
            None => CompatReport::incompatible(vec!["app version unknown".to_owned()]),
        })
    }
}

tagship_plugin::export_compat_check!(CompatOk);
