//! Test guest `tp-say`: says a configured text through every channel a plugin has, to check
//! that the host redacts and escapes each of them.
//!
//! Contract: config `text` (required); `{secret}` in it is replaced by the value of the secret
//! named by config `secret_name` (when set). Config `pad` (a byte count, default 0) puts that
//! many `.` before the text on stdout and stderr. Config `via` picks the channel:
//! - `log`: the text logged at info level; `Ok` healthy, reason `said`;
//! - `stdout` / `stderr`: the padded text printed (no newline added); `Ok` healthy;
//! - `panic`: a panic with the text as its message;
//! - `abort`: the text written to stderr, then `std::process::abort()` (no panic message, as an
//!   interpreter that gives up);
//! - `traceback`: a Python-style traceback ending in the text written to stderr, then a panic
//!   `Python function threw an unexpected exception`, as componentize-py's runtime does;
//! - `err`: `Err(text)`;
//! - `reason` (the default): `Ok` unhealthy with the text as reason and threshold.

use std::io::Write as _;

use tagship_plugin::health::{DeployContext, Guest, HealthReport};

struct Say;

impl Guest for Say {
    fn check(_ctx: DeployContext) -> Result<HealthReport, String> {
        let mut text = tagship_plugin::require_config("text")?;
        if let Some(name) = tagship_plugin::config("secret_name") {
            let value = tagship_plugin::secret(&name).unwrap_or_default();
            text = text.replace("{secret}", &value);
        }
        let pad = ".".repeat(
            tagship_plugin::config("pad")
                .and_then(|p| p.parse().ok())
                .unwrap_or(0),
        );
        let said = HealthReport::healthy("said");
        match tagship_plugin::config("via").as_deref().unwrap_or("reason") {
            "log" => {
                tagship_plugin::info!("{text}");
                Ok(said)
            }
            "stdout" => {
                let _ = write!(std::io::stdout(), "{pad}{text}");
                let _ = std::io::stdout().flush();
                Ok(said)
            }
            "stderr" => {
                let _ = write!(std::io::stderr(), "{pad}{text}");
                Ok(said)
            }
            "panic" => panic!("{text}"),
            "abort" => {
                let _ = writeln!(std::io::stderr(), "{text}");
                std::process::abort()
            }
            "traceback" => {
                let _ = writeln!(
                    std::io::stderr(),
                    "Traceback (most recent call last):\n  File \"app.py\", line 12, in check\n    raise ValueError(x)\n{text}"
                );
                panic!("Python function threw an unexpected exception")
            }
            "err" => Err(text),
            _ => Ok(HealthReport::unhealthy(text.clone()).with_threshold(text)),
        }
    }
}

tagship_plugin::export_health_check!(Say);
