//! What plugins hand back and what reaches them, from untrusted bytes: deploy contexts and
//! events as JSON (`plugin run --input`), host grants and guest request URLs through the grant
//! check, and redaction of guest text (verdict reasons, log lines, errors). No panics; a
//! redacted text never contains the secret; a URL is allowed only for a granted host.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tagship_fuzz::context::{DeployContext, Event};
use tagship_fuzz::{Grants, Redactor};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 4 {
        0 => {
            if let Ok(ctx) = serde_json::from_slice::<DeployContext>(rest) {
                let again = serde_json::to_vec(&ctx).expect("a context serialises");
                let back: DeployContext = serde_json::from_slice(&again).expect("and reads back");
                assert_eq!(back, ctx);
            }
        }
        1 => {
            let _ = serde_json::from_slice::<Event>(rest);
        }
        2 => {
            // A grant, then the URL a guest asks for.
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            let (grant, url) = text.split_once('\n').unwrap_or((text, ""));
            let Ok(grants) = Grants::none().with_hosts(&[grant]) else {
                return;
            };
            if let Ok(url) = url::Url::parse(url)
                && grants.check_url(&url).is_ok()
            {
                let host = url.host_str().expect("an allowed URL has a host");
                // For a plain DNS name the allowed host must be the granted one (IP literals
                // and IDNA names have other spellings, so they are left out of this check).
                let name = grant.trim().split(':').next().unwrap_or_default();
                if !name.is_empty()
                    && !name.contains("xn--")
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'-')
                {
                    assert_eq!(host, name, "{url} allowed by grant `{grant}`");
                }
            }
        }
        _ => {
            // A secret, then a guest's text.
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            let (secret, said) = text.split_once('\n').unwrap_or((text, ""));
            let redacted = Redactor::new([("S", secret)]).redact(said);
            let replacement = "[redacted:S]";
            if secret.len() >= 4 && !secret.chars().any(|c| replacement.contains(c)) {
                assert!(!redacted.contains(secret), "{said:?} -> {redacted:?}");
            }
        }
    }
});
