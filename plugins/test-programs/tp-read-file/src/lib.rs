//! Test guest `tp-read-file`: a health check that tries to reach the file system.
//!
//! Contract: reads no config. Tries `std::fs::read_to_string("/etc/passwd")` and
//! `std::fs::read_dir("/")`.
//! - both failed (the sandbox has no preopened directories): `Err("file access denied: <read
//!   error>; <read_dir error>")`;
//! - either succeeded: `Ok` healthy report with reason `read N bytes` and/or
//!   `listed N entries of /` (joined by `; `), so a host test can assert it got `Err`.

use tagship_plugin::health::{DeployContext, Guest, HealthReport};

struct ReadFile;

impl Guest for ReadFile {
    fn check(_ctx: DeployContext) -> Result<HealthReport, String> {
        let read = std::fs::read_to_string("/etc/passwd");
        let list = std::fs::read_dir("/");
        let mut successes = Vec::new();
        let mut errors = Vec::new();
        match read {
            Ok(text) => successes.push(format!("read {} bytes", text.len())),
            Err(e) => errors.push(format!("read /etc/passwd: {e}")),
        }
        match list {
            Ok(entries) => successes.push(format!("listed {} entries of /", entries.count())),
            Err(e) => errors.push(format!("read_dir /: {e}")),
        }
        if successes.is_empty() {
            Err(format!("file access denied: {}", errors.join("; ")))
        } else {
            Ok(HealthReport::healthy(successes.join("; ")))
        }
    }
}

tagship_plugin::export_health_check!(ReadFile);
