//! Built-in notifier `slack-notify`: posts each deploy event to a Slack incoming webhook.
//!
//! Config:
//! - `webhook_secret` (default `SLACK_WEBHOOK_URL`): the name of the secret holding the webhook
//!   URL. The URL is a secret: it never appears in logs or errors.
//!
//! Secrets: the one named by `webhook_secret`. Grants: the webhook's host (`hooks.slack.com`).
//!
//! The message has a plain `text` fallback and `blocks`: a header (component, version, event),
//! a section with stage, environment, previous → target version and pipeline link, the event's
//! message, and a context line with the deploy id and time. A non-2xx answer is `Err` with the
//! status and a body excerpt.

mod message;

use tagship_plugin::http::{Request, status_error};
use tagship_plugin::notify::{Event, Guest};

struct SlackNotify;

impl Guest for SlackNotify {
    fn notify(event: Event) -> Result<(), String> {
        let secret_name = tagship_plugin::config_or("webhook_secret", "SLACK_WEBHOOK_URL");
        let webhook = tagship_plugin::require_secret(secret_name.trim())?;
        let response = Request::post(webhook)
            .json(&message::build(&event))
            .send()
            .map_err(|e| format!("slack webhook request failed: {}", e.describe()))?;
        if response.is_success() {
            Ok(())
        } else {
            Err(format!(
                "slack webhook answered {}",
                status_error(response.status, &response.body)
            ))
        }
    }
}

tagship_plugin::export_notifier!(SlackNotify);
