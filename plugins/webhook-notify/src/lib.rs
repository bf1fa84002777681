//! Built-in notifier `webhook-notify`: POSTs each deploy event as JSON to a URL, signed when a
//! signing secret is granted.
//!
//! Config:
//! - `url` (required): where to POST; placeholders such as `{{environment}}` are substituted;
//! - `signing_secret` (default `TAGSHIP_WEBHOOK_SECRET`): the name of the secret to sign with.
//!
//! Secrets: the one named by `signing_secret`, optional: without it requests are unsigned.
//! Grants: the URL's host.
//!
//! The body is `tagship_plugin::json::event` (`Content-Type: application/json`):
//!
//! ```json
//! {"kind": "stage-succeeded", "deploy_id": "…", "timestamp": "2026-01-01T00:00:00Z",
//!  "message": "…",
//!  "context": {"component": "registry", "version": "v3.1.0", "previous_version": "v3.0.0",
//!              "stage": "gstg-cny", "environment": "gstg", "pipeline_url": null,
//!              "app_version": null, "workloads": [{"cluster": "…", "namespace": "…",
//!              "workload": "…", "container": "…", "image": "…", "version": "v3.0.0"}]}}
//! ```
//!
//! Headers: `X-Tagship-Event: <kind>`, `X-Tagship-Delivery: <deploy-id>/<stage>/<kind>` (the same
//! for a retried delivery, so receivers can de-duplicate) and, when signing,
//! `X-Tagship-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes, keyed by the secret>`.
//! A non-2xx answer is `Err` with the status and a body excerpt.

mod sign;

use tagship_plugin::http::{Request, status_error};
use tagship_plugin::notify::{Event, Guest};
use tagship_plugin::{json, template};

struct WebhookNotify;

impl Guest for WebhookNotify {
    fn notify(event: Event) -> Result<(), String> {
        let url = template::render(&tagship_plugin::require_config("url")?, &event.context)
            .map_err(|e| format!("config `url`: {e}"))?;
        let secret_name = tagship_plugin::config_or("signing_secret", "TAGSHIP_WEBHOOK_SECRET");
        let body = json::event(&event).to_string();
        let mut request = Request::post(url.clone());
        for (name, value) in sign::headers(
            &event,
            body.as_bytes(),
            tagship_plugin::secret(secret_name.trim()).as_deref(),
        ) {
            request = request.header(name, &value);
        }
        let response = request
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .map_err(|e| format!("POST {url}: {}", e.describe()))?;
        if response.is_success() {
            Ok(())
        } else {
            Err(format!(
                "POST {url} answered {}",
                status_error(response.status, &response.body)
            ))
        }
    }
}

tagship_plugin::export_notifier!(WebhookNotify);
