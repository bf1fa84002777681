//! Test guest `tp-many-reasons`: a compat check whose report holds many empty reasons, to
//! check that the result limit counts what a result costs, not only its text.
//!
//! Contract: config `count` (default 2,000,000): `Ok` compatible with that many empty reasons.

use tagship_plugin::compat::{CompatReport, DeployContext, Guest};

struct ManyReasons;

impl Guest for ManyReasons {
    fn check(_ctx: DeployContext) -> Result<CompatReport, String> {
        let count = tagship_plugin::config("count")
            .and_then(|v| v.parse().ok())
            .unwrap_or(2_000_000);
        Ok(CompatReport::compatible(vec![String::new(); count]))
    }
}

tagship_plugin::export_compat_check!(ManyReasons);
