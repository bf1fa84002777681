//! The request a guest hands to `http.fetch`, from untrusted bytes: method, URL, any number of
//! headers of any size, a body. No panics (the `http` crate panics on some inputs when not
//! used through its fallible constructors); what passes is within every bound, uses an allowed
//! method and none of the headers the runner sets; a refusal never quotes the URL's path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tagship_fuzz::request::{self, FORBIDDEN_HEADERS, MAX_HEADERS, MAX_URL_BYTES, METHODS};

fuzz_target!(|data: &[u8]| {
    // Layout: a byte of repeat count, then NUL-separated fields: method, URL, then header
    // name/value pairs; the repeat count multiplies the headers (up to 255 times) so that
    // header counts far over the limit are reached from small inputs.
    let Some((&repeat, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut fields = text.split('\0');
    let method = fields.next().unwrap_or_default();
    let url = fields.next().unwrap_or_default();
    let mut pairs = Vec::new();
    while let Some(name) = fields.next() {
        pairs.push((
            name.to_owned(),
            fields.next().unwrap_or_default().to_owned(),
        ));
    }
    let headers: Vec<(String, String)> = (0..usize::from(repeat).max(1) * 200)
        .flat_map(|_| pairs.iter().cloned())
        .take(40_000)
        .collect();
    let body = (repeat % 2 == 1).then(|| rest.to_vec());
    // What the refusal says of the same request to a neutral URL: a path that happens to be
    // words of the message itself ("the limit of") is not a leak.
    let neutral = request::check(method, "http://neutral.invalid/", &headers, body.clone())
        .err()
        .map(|e| e.0)
        .unwrap_or_default();
    match request::check(method, url, &headers, body) {
        Ok(checked) => {
            assert!(headers.len() <= MAX_HEADERS);
            assert!(checked.headers.len() <= MAX_HEADERS);
            assert!(url.len() <= MAX_URL_BYTES);
            assert!(METHODS.contains(&checked.method.as_str()));
            for name in checked.headers.keys() {
                assert!(!FORBIDDEN_HEADERS.contains(&name.as_str()), "{name}");
            }
        }
        Err(invalid) => {
            if let Ok(parsed) = url::Url::parse(url)
                && parsed.path().len() > 8
                && parsed.path().is_char_boundary(8)
            {
                let secret_part = &parsed.path()[1..];
                if secret_part.len() >= 8
                    && !neutral.contains(secret_part)
                    && !method.contains(secret_part)
                    && !headers.iter().any(|(n, _)| n.contains(secret_part))
                {
                    assert!(!invalid.0.contains(secret_part), "{}", invalid.0);
                }
            }
        }
    }
});
