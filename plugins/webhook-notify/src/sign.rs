//! The delivery headers and the body signature. Pure.

use std::fmt::Write as _;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tagship_plugin::json::event_kind_name;
use tagship_plugin::notify::Event;

/// The headers for delivering `body` (the JSON of `event`), signed with `secret` when given.
#[must_use]
pub fn headers(event: &Event, body: &[u8], secret: Option<&str>) -> Vec<(&'static str, String)> {
    let kind = event_kind_name(event.kind);
    let mut headers = vec![
        ("X-Tagship-Event", kind.to_owned()),
        (
            "X-Tagship-Delivery",
            format!("{}/{}/{kind}", event.deploy_id, event.context.stage),
        ),
    ];
    if let Some(secret) = secret {
        headers.push((
            "X-Tagship-Signature",
            format!("sha256={}", signature(secret, body)),
        ));
    }
    headers
}

/// Lowercase hex of HMAC-SHA256(`secret`, `body`).
#[must_use]
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tagship_plugin::notify::{DeployContext, EventKind};

    fn event() -> Event {
        Event {
            kind: EventKind::StageStarted,
            deploy_id: "d-9".into(),
            timestamp: "2026-01-01T00:00:00Z".into(),
            message: String::new(),
            context: DeployContext {
                component: "registry".into(),
                version: "v3.1.0".into(),
                previous_version: None,
                stage: "gprd".into(),
                environment: "gprd".into(),
                pipeline_url: None,
                workloads: Vec::new(),
                app_version: None,
            },
        }
    }

    #[test]
    fn the_signature_is_rfc_4231_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn unsigned_deliveries_carry_event_and_delivery_headers() {
        assert_eq!(
            headers(&event(), b"{}", None),
            vec![
                ("X-Tagship-Event", "stage-started".to_owned()),
                ("X-Tagship-Delivery", "d-9/gprd/stage-started".to_owned()),
            ]
        );
    }

    #[test]
    fn signed_deliveries_add_the_signature_header() {
        let headers = headers(&event(), b"what do ya want for nothing?", Some("Jefe"));
        assert_eq!(
            headers[2],
            (
                "X-Tagship-Signature",
                "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
                    .to_owned()
            )
        );
    }
}
