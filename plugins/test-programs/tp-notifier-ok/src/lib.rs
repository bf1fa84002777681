//! Test guest `tp-notifier-ok`: a notifier that POSTs the event as JSON.
//!
//! Contract: reads config `url` (required). `POST url` with `tagship_plugin::json::event(&event)`
//! as the body (`Content-Type: application/json`; shape in the SDK's `json` module docs).
//! 2xx: `Ok(())`. Other status: `Err("HTTP <status>: <body excerpt>")`. Request failed:
//! `Err("POST <url>: <error text>")`.

use tagship_plugin::notify::{Event, Guest};

struct NotifierOk;

impl Guest for NotifierOk {
    fn notify(event: Event) -> Result<(), String> {
        let url = tagship_plugin::require_config("url")?;
        tagship_plugin::http::post_json(&url, &tagship_plugin::json::event(&event))?
            .error_for_status()?;
        Ok(())
    }
}

tagship_plugin::export_notifier!(NotifierOk);
