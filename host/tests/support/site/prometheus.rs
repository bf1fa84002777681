//! Prometheus, and polling.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::environment::env;

/// An instant query against `$TAGSHIP_PROMETHEUS_URL`: the values of the result vector, as
/// numbers (empty when the query matches nothing). Panics when Prometheus answers an error.
pub fn prometheus_values(query: &str) -> Vec<f64> {
    let base = env("TAGSHIP_PROMETHEUS_URL");
    let url = url::Url::parse_with_params(&format!("{base}/api/v1/query"), &[("query", query)])
        .expect("query url");
    let body = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            reqwest::Client::new()
                .get(url.as_str())
                .timeout(Duration::from_secs(10))
                .send()
                .await?
                .text()
                .await
        })
        .unwrap_or_else(|e| panic!("query Prometheus at {base}: {e}"));
    let json: Value = serde_json::from_str(&body).expect("Prometheus answers JSON");
    assert_eq!(json["status"], "success", "{query}: {json}");
    json["data"]["result"]
        .as_array()
        .map(|results| {
            results
                .iter()
                .filter_map(|r| r["value"][1].as_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `check` every 500 ms until it is true or `timeout` passed; whether it became true.
///
/// Not `tagship_tests::harness::eventually` (async, fallible): host's end-to-end tests are
/// blocking and poll the binary's effects with plain closures.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
