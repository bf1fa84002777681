//! Versions (`--version`, live image tags) and tag templates from untrusted text: no panics,
//! a consistent order, a tag rendered from a template reads back as its version, and only a
//! valid image tag passes `render_checked`.
#![no_main]

use std::cmp::Ordering;

use libfuzzer_sys::fuzz_target;
use tagship_fuzz::version::{TagTemplate, Version, image_tag, is_valid_image_tag};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Three fields: a template, a version and another version, separated by newlines.
    let mut fields = text.splitn(3, '\n');
    let (template, first, second) = (
        fields.next().unwrap_or_default(),
        fields.next().unwrap_or_default(),
        fields.next().unwrap_or_default(),
    );
    let _ = image_tag(text);
    let _ = text.parse::<Version>();
    let first = first.parse::<Version>();
    let second = second.parse::<Version>();
    if let (Ok(a), Ok(b)) = (&first, &second) {
        assert_eq!(a.cmp(b), b.cmp(a).reverse());
        assert_eq!(a == b, a.cmp(b) == Ordering::Equal);
    }
    if let Ok(a) = &first {
        assert_eq!(a.as_str().parse::<Version>().as_ref(), Ok(a));
    }
    if let Ok(template) = template.parse::<TagTemplate>() {
        let _ = template.parse_tag(text);
        if let Ok(version) = &first {
            let tag = template.render(version);
            assert_eq!(template.parse_tag(&tag).as_ref(), Some(version), "{tag}");
            // What is applied is always a valid image tag, and the check refuses only those.
            assert_eq!(template.render_checked(version).is_ok(), is_valid_image_tag(&tag));
        }
    }
});
