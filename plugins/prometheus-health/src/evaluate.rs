//! Turns a Prometheus `/api/v1/query` response into a health report. Pure: the HTTP call happens
//! in `lib.rs`, everything after it here.
//!
//! Verdicts:
//! - no series: `unknown`, the query in the reason;
//! - any series violating the condition: `unhealthy`, naming the worst (furthest from passing)
//!   by its labels, or by the query when it has none (an aggregate such as `min(…)`, a scalar);
//! - otherwise, any series whose value is NaN (Prometheus' answer to 0/0, e.g. an error ratio
//!   with no traffic): `unknown`, naming it — no data is not a pass, and not proof of a failure;
//! - otherwise `healthy`, naming the series closest to the limit.
//!
//! `value` is the reported series' value (absent for NaN), `threshold` the pass text.

use tagship_plugin::health::HealthReport;
use tagship_plugin::http::status_error;
use tagship_plugin::serde_json::Value;

use crate::condition::Condition;

/// One series of an instant query result.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The series as PromQL writes it: `name{label="value", ...}`, or `name` alone; `None`
    /// when it has neither name nor labels (the result of an aggregation such as `min(…)`, or a
    /// scalar): then the query is what names it.
    pub name: Option<String>,
    /// Its value; NaN and ±Inf as Prometheus sent them.
    pub value: f64,
}

/// The series of a query response, or why there are none to judge (a Prometheus error, a
/// non-2xx status, a body that is not a query result, a range vector).
pub fn parse_response(status: u16, body: &[u8]) -> Result<Vec<Series>, String> {
    let json: Option<Value> = tagship_plugin::serde_json::from_slice(body).ok();
    if let Some(json) = &json
        && json["status"] == "error"
    {
        let kind = json["errorType"].as_str().unwrap_or("error");
        let text = json["error"].as_str().unwrap_or("(no error text)");
        return Err(format!("prometheus rejected the query ({kind}): {text}"));
    }
    if !(200..300).contains(&status) {
        return Err(format!(
            "prometheus answered {}",
            status_error(status, body)
        ));
    }
    let Some(json) = json else {
        return Err(format!(
            "prometheus answered with a body that is not JSON: {}",
            tagship_plugin::http::excerpt(body, 200)
        ));
    };
    let data = &json["data"];
    match data["resultType"].as_str() {
        Some("vector") => data["result"]
            .as_array()
            .ok_or("prometheus result has no `result` list")?
            .iter()
            .map(|sample| {
                Ok(Series {
                    name: series_name(&sample["metric"]),
                    value: sample_value(&sample["value"])?,
                })
            })
            .collect(),
        Some("scalar") => Ok(vec![Series {
            name: None,
            value: sample_value(&data["result"])?,
        }]),
        Some("matrix") => Err(
            "the query returns a range vector; use an instant vector (drop the `[5m]`-style \
             range or aggregate it, e.g. `avg_over_time(x[5m])`)"
                .to_owned(),
        ),
        Some(other) => Err(format!(
            "the query returns a {other}; use a query returning a number"
        )),
        None => Err("prometheus response has no `data.resultType`".to_owned()),
    }
}

impl Series {
    /// How messages name the series: its name and labels, else the query that gave it.
    fn subject<'a>(&'a self, query: &'a str) -> &'a str {
        self.name.as_deref().unwrap_or(query)
    }
}

/// The report for `series` against `condition`; `pass` is the condition as configured.
#[must_use]
pub fn judge(query: &str, pass: &str, condition: &Condition, series: &[Series]) -> HealthReport {
    let total = series.len();
    let with_threshold = |report: HealthReport| report.with_threshold(pass);
    if series.is_empty() {
        return with_threshold(HealthReport::unknown(format!(
            "the query returned no series: `{query}`"
        )));
    }
    let failing: Vec<&Series> = series
        .iter()
        .filter(|s| !s.value.is_nan() && !condition.passes(s.value))
        .collect();
    if let Some(worst) = lowest_margin(condition, &failing) {
        let context = if total > 1 {
            format!(
                " (the worst of {} failing out of {total} series)",
                failing.len()
            )
        } else {
            String::new()
        };
        let reason = format!(
            "`{}` = {} does not satisfy `{pass}`{context}",
            worst.subject(query),
            worst.value
        );
        return with_threshold(HealthReport::unhealthy(reason).with_value(worst.value));
    }
    if let Some(nan) = series.iter().find(|s| s.value.is_nan()) {
        return with_threshold(HealthReport::unknown(format!(
            "`{}` is NaN (no data, e.g. a ratio with no traffic), so `{pass}` cannot be decided",
            nan.subject(query)
        )));
    }
    let all: Vec<&Series> = series.iter().collect();
    let closest = lowest_margin(condition, &all).unwrap_or(&series[0]);
    let context = if total > 1 {
        format!(" (all {total} series pass; this one is closest to the limit)")
    } else {
        String::new()
    };
    let reason = format!(
        "`{}` = {} satisfies `{pass}`{context}",
        closest.subject(query),
        closest.value
    );
    with_threshold(HealthReport::healthy(reason).with_value(closest.value))
}

fn lowest_margin<'a>(condition: &Condition, series: &[&'a Series]) -> Option<&'a Series> {
    series.iter().copied().min_by(|a, b| {
        condition
            .margin(a.value)
            .total_cmp(&condition.margin(b.value))
    })
}

/// `name{label="value", …}`, `name`, `{label="value"}`; `None` without name and labels.
fn series_name(metric: &Value) -> Option<String> {
    let labels = metric.as_object()?;
    let name = labels.get("__name__").and_then(Value::as_str).unwrap_or("");
    let mut pairs: Vec<(&String, &Value)> =
        labels.iter().filter(|(k, _)| *k != "__name__").collect();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let inner = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(", ");
    match (name.is_empty(), inner.is_empty()) {
        (true, true) => None,
        (false, true) => Some(name.to_owned()),
        _ => Some(format!("{name}{{{inner}}}")),
    }
}

fn sample_value(sample: &Value) -> Result<f64, String> {
    let text = sample[1]
        .as_str()
        .ok_or("prometheus sample has no `[time, \"value\"]` pair")?;
    match text {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => text
            .parse()
            .map_err(|_| format!("prometheus sample value `{text}` is not a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tagship_plugin::health::HealthStatus;

    fn vector(samples: &[(&str, &str)]) -> Vec<u8> {
        let result: Vec<String> = samples
            .iter()
            .map(|(metric, value)| {
                format!(r#"{{"metric":{metric},"value":[1700000000.1,"{value}"]}}"#)
            })
            .collect();
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
            result.join(",")
        )
        .into_bytes()
    }

    fn run(pass: &str, body: &[u8]) -> HealthReport {
        let condition = Condition::parse(pass).unwrap();
        judge("q", pass, &condition, &parse_response(200, body).unwrap())
    }

    #[test]
    fn a_single_passing_series_is_healthy() {
        let report = run("== 1", &vector(&[(r#"{"job":"registry"}"#, "1")]));
        assert_eq!(report.status, HealthStatus::Healthy);
        assert_eq!(report.value, Some(1.0));
        assert_eq!(report.threshold.as_deref(), Some("== 1"));
        assert_eq!(report.reason, r#"`{job="registry"}` = 1 satisfies `== 1`"#);
    }

    #[test]
    fn no_series_is_unknown_and_shows_the_query() {
        let condition = Condition::parse("== 1").unwrap();
        let series = parse_response(200, &vector(&[])).unwrap();
        let report = judge(r#"up{job="registry"}"#, "== 1", &condition, &series);
        assert_eq!(report.status, HealthStatus::Unknown);
        assert_eq!(
            report.reason,
            r#"the query returned no series: `up{job="registry"}`"#
        );
    }

    #[test]
    fn the_worst_failing_series_is_named_by_its_labels() {
        let body = vector(&[
            (r#"{"__name__":"ratio","pod":"a"}"#, "0.999"),
            (r#"{"__name__":"ratio","pod":"b"}"#, "0.95"),
            (r#"{"__name__":"ratio","pod":"c"}"#, "0.98"),
        ]);
        let report = run("0.99..", &body);
        assert_eq!(report.status, HealthStatus::Unhealthy);
        assert_eq!(report.value, Some(0.95));
        assert_eq!(
            report.reason,
            r#"`ratio{pod="b"}` = 0.95 does not satisfy `0.99..` (the worst of 2 failing out of 3 series)"#
        );
    }

    #[test]
    fn all_passing_reports_the_series_closest_to_the_limit() {
        let body = vector(&[(r#"{"pod":"a"}"#, "0.01"), (r#"{"pod":"b"}"#, "0.04")]);
        let report = run("..0.05", &body);
        assert_eq!(report.status, HealthStatus::Healthy);
        assert_eq!(report.value, Some(0.04));
        assert!(
            report.reason.starts_with(r#"`{pod="b"}` = 0.04 satisfies"#),
            "{}",
            report.reason
        );
    }

    #[test]
    fn nan_is_unknown_unless_another_series_fails() {
        let report = run("..0.05", &vector(&[(r#"{"pod":"a"}"#, "NaN")]));
        assert_eq!(report.status, HealthStatus::Unknown);
        assert_eq!(report.value, None);
        assert!(report.reason.contains("is NaN"));

        let report = run(
            "..0.05",
            &vector(&[(r#"{"pod":"a"}"#, "NaN"), (r#"{"pod":"b"}"#, "0.5")]),
        );
        assert_eq!(report.status, HealthStatus::Unhealthy);
        assert_eq!(report.value, Some(0.5));
    }

    #[test]
    fn infinities_compare_as_numbers() {
        assert_eq!(
            run("..0.05", &vector(&[("{}", "+Inf")])).status,
            HealthStatus::Unhealthy
        );
        assert_eq!(
            run("..0.05", &vector(&[("{}", "-Inf")])).status,
            HealthStatus::Healthy
        );
    }

    #[test]
    fn a_scalar_result_is_one_series() {
        let body =
            br#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"2"]}}"#;
        let report = run(">= 1", body);
        assert_eq!(report.status, HealthStatus::Healthy);
        assert_eq!(report.reason, "`q` = 2 satisfies `>= 1`");
    }

    #[test]
    fn a_prometheus_error_is_an_error_with_its_text_whatever_the_status() {
        let body = br#"{"status":"error","errorType":"bad_data","error":"parse error at char 4"}"#;
        assert_eq!(
            parse_response(400, body),
            Err("prometheus rejected the query (bad_data): parse error at char 4".into())
        );
    }

    #[test]
    fn a_non_2xx_status_without_prometheus_json_is_an_error() {
        assert_eq!(
            parse_response(502, b"Bad Gateway"),
            Err("prometheus answered HTTP 502: Bad Gateway".into())
        );
    }

    #[test]
    fn a_range_vector_is_an_error_with_a_hint() {
        let body = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(
            parse_response(200, body)
                .unwrap_err()
                .contains("range vector")
        );
    }

    #[test]
    fn a_metric_name_without_labels_reads_as_the_name() {
        let series = parse_response(200, &vector(&[(r#"{"__name__":"up"}"#, "1")])).unwrap();
        assert_eq!(series[0].name.as_deref(), Some("up"));
    }

    #[test]
    fn a_series_without_name_or_labels_is_named_by_its_query() {
        let query = r#"min(gitlab_deployment_health:service{namespace="gstg"})"#;
        let cases = [
            (
                "== 1",
                "0",
                r#"`min(gitlab_deployment_health:service{namespace="gstg"})` = 0 does not satisfy `== 1`"#,
            ),
            (
                "== 1",
                "1",
                r#"`min(gitlab_deployment_health:service{namespace="gstg"})` = 1 satisfies `== 1`"#,
            ),
            (
                "..0.05",
                "NaN",
                r#"`min(gitlab_deployment_health:service{namespace="gstg"})` is NaN (no data, e.g. a ratio with no traffic), so `..0.05` cannot be decided"#,
            ),
        ];
        for (pass, value, reason) in cases {
            let condition = Condition::parse(pass).unwrap();
            let series = parse_response(200, &vector(&[("{}", value)])).unwrap();
            assert_eq!(series[0].name, None);
            assert_eq!(judge(query, pass, &condition, &series).reason, reason);
        }
    }
}
