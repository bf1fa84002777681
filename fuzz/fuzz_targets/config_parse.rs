//! `tagship.toml` from untrusted text: `config::parse` and `config::parse_duration` must never
//! panic, and every refusal must be located inside the text.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(error) = tagship_fuzz::config::parse(text, Path::new("tagship.toml")) {
        let shown = error.to_string();
        assert!(shown.starts_with("tagship.toml:"), "{shown}");
        if let Some((line, column)) = error.position() {
            assert!(line >= 1 && column >= 1, "{shown}");
            assert!(line <= text.lines().count().max(1) + 1, "{shown}");
        }
    }
    let _ = tagship_fuzz::config::parse_duration(text);
});
