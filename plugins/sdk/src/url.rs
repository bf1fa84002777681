//! URL building helpers. Pure: no bindings, no I/O.

use std::fmt::Write as _;

/// Percent-encodes `text` for use as one query value or one path segment: every byte except the
/// RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`) is encoded, so `/`, `{`, `"` and
/// spaces survive a round trip (a PromQL query, a GitLab project path like `group/project`).
#[must_use]
pub fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// Joins `base` and `path` with exactly one `/` between them, whatever slashes either has.
#[must_use]
pub fn join(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreserved_characters_pass_through() {
        assert_eq!(encode_component("AZaz09-._~"), "AZaz09-._~");
    }

    #[test]
    fn promql_is_encoded_entirely() {
        assert_eq!(
            encode_component(r#"up{job="registry"} == 1"#),
            "up%7Bjob%3D%22registry%22%7D%20%3D%3D%201"
        );
    }

    #[test]
    fn a_project_path_becomes_one_segment() {
        assert_eq!(
            encode_component("gitlab-org/container-registry"),
            "gitlab-org%2Fcontainer-registry"
        );
    }

    #[test]
    fn multibyte_characters_are_encoded_per_byte() {
        assert_eq!(encode_component("é"), "%C3%A9");
    }

    #[test]
    fn join_uses_exactly_one_slash() {
        assert_eq!(
            join("http://p:9090/", "/api/v1/query"),
            "http://p:9090/api/v1/query"
        );
        assert_eq!(
            join("http://p:9090", "api/v1/query"),
            "http://p:9090/api/v1/query"
        );
    }
}
