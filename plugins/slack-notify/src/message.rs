//! The Slack message for an event (Block Kit). Pure.

use tagship_plugin::json::event_kind_phrase;
use tagship_plugin::notify::{Event, EventKind};
use tagship_plugin::serde_json::{Value, json};

/// Slack's limit on a header block's text.
const HEADER_MAX: usize = 150;
/// Slack's limit on a section's text.
const SECTION_MAX: usize = 3000;

/// The webhook payload for `event`.
#[must_use]
pub fn build(event: &Event) -> Value {
    let ctx = &event.context;
    let title = format!(
        "{} {} {}: {}",
        emoji(event.kind),
        ctx.component,
        ctx.version,
        event_kind_phrase(event.kind)
    );
    let versions = match &ctx.previous_version {
        Some(previous) => format!("{} → {}", escape(previous), escape(&ctx.version)),
        None => escape(&ctx.version),
    };
    let mut fields = vec![
        field("Stage", &escape(&ctx.stage)),
        field("Environment", &escape(&ctx.environment)),
        field("Version", &versions),
    ];
    if let Some(url) = &ctx.pipeline_url {
        fields.push(field("Pipeline", &format!("<{}|pipeline>", escape(url))));
    }
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&title, HEADER_MAX), "emoji": true}}),
        json!({"type": "section", "fields": fields}),
    ];
    if !event.message.trim().is_empty() {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&escape(&event.message), SECTION_MAX)}}));
    }
    blocks.push(
        json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!(
            "deploy `{}` · {}", escape(&event.deploy_id), escape(&event.timestamp)
        )}]}),
    );
    let mut fallback = format!(
        "{} {}: {} on {} ({})",
        ctx.component,
        ctx.version,
        event_kind_phrase(event.kind),
        ctx.stage,
        ctx.environment
    );
    if !event.message.trim().is_empty() {
        fallback.push_str(" — ");
        fallback.push_str(&event.message);
    }
    json!({"text": truncate(&escape(&fallback), SECTION_MAX), "blocks": blocks})
}

fn field(name: &str, value: &str) -> Value {
    json!({"type": "mrkdwn", "text": format!("*{name}*\n{value}")})
}

fn emoji(kind: EventKind) -> &'static str {
    match kind {
        EventKind::DeploySucceeded | EventKind::StageSucceeded | EventKind::RollbackSucceeded => {
            ":white_check_mark:"
        }
        EventKind::DeployFailed | EventKind::StageFailed | EventKind::RollbackFailed => ":x:",
        EventKind::RollbackStarted => ":rewind:",
        EventKind::RollbackRefused | EventKind::CheckBlocked => ":no_entry:",
        EventKind::AwaitingApproval => ":raised_hand:",
        EventKind::LockWaiting => ":lock:",
        EventKind::DeployStarted | EventKind::StageStarted => ":rocket:",
        EventKind::Test => ":test_tube:",
    }
}

/// Escapes the three characters Slack's `mrkdwn` treats as control characters.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max_chars - 1).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tagship_plugin::notify::DeployContext;

    fn event(kind: EventKind, message: &str) -> Event {
        Event {
            kind,
            deploy_id: "d-42".into(),
            timestamp: "2026-01-01T00:00:00Z".into(),
            message: message.into(),
            context: DeployContext {
                component: "registry".into(),
                version: "v3.1.0".into(),
                previous_version: Some("v3.0.0".into()),
                stage: "gstg-cny".into(),
                environment: "gstg".into(),
                pipeline_url: Some("https://ci.example/p/7".into()),
                workloads: Vec::new(),
                app_version: None,
            },
        }
    }

    #[test]
    fn the_header_names_component_version_and_event() {
        let payload = build(&event(EventKind::StageSucceeded, ""));
        assert_eq!(
            payload["blocks"][0]["text"]["text"],
            ":white_check_mark: registry v3.1.0: stage succeeded"
        );
    }

    #[test]
    fn the_fields_show_stage_environment_versions_and_pipeline() {
        let payload = build(&event(EventKind::StageFailed, "bake failed"));
        let fields: Vec<&str> = payload["blocks"][1]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["text"].as_str().unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "*Stage*\ngstg-cny",
                "*Environment*\ngstg",
                "*Version*\nv3.0.0 → v3.1.0",
                "*Pipeline*\n<https://ci.example/p/7|pipeline>"
            ]
        );
        assert_eq!(payload["blocks"][2]["text"]["text"], "bake failed");
    }

    #[test]
    fn the_fallback_text_reads_as_one_line() {
        let payload = build(&event(EventKind::StageFailed, "bake failed"));
        assert_eq!(
            payload["text"],
            "registry v3.1.0: stage failed on gstg-cny (gstg) — bake failed"
        );
    }

    #[test]
    fn an_empty_message_adds_no_section() {
        let payload = build(&event(EventKind::Test, " "));
        assert_eq!(payload["blocks"].as_array().unwrap().len(), 3);
        assert_eq!(payload["blocks"][2]["type"], "context");
    }

    #[test]
    fn mrkdwn_control_characters_are_escaped() {
        let payload = build(&event(EventKind::StageFailed, "a <b> & c"));
        assert_eq!(payload["blocks"][2]["text"]["text"], "a &lt;b&gt; &amp; c");
    }

    #[test]
    fn long_texts_are_cut_to_slack_limits() {
        let payload = build(&event(EventKind::StageFailed, &"x".repeat(5000)));
        assert_eq!(
            payload["blocks"][2]["text"]["text"]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            SECTION_MAX
        );
    }
}
