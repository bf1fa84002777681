from tagship_plugin import (
    CompatReport,
    HealthReport,
    HealthStatus,
    compatible,
    healthy,
    incompatible,
    unhealthy,
    unknown,
)


def test_health_builders_set_status_reason_value_and_threshold():
    report = healthy("all good", value=1, threshold="== 1")
    assert isinstance(report, HealthReport)
    assert report == HealthReport(
        status=HealthStatus.HEALTHY, value=1.0, threshold="== 1", reason="all good"
    )
    assert isinstance(report.value, float)
    assert unhealthy("bad").status == HealthStatus.UNHEALTHY
    assert unknown("no data").status == HealthStatus.UNKNOWN


def test_value_and_threshold_are_optional_and_converted():
    report = unhealthy("HTTP 503", value=503, threshold=200)
    assert (report.value, report.threshold) == (503.0, "200")
    bare = unknown("no series")
    assert (bare.value, bare.threshold) == (None, None)


def test_compat_builders_take_a_list_or_one_reason():
    assert compatible(["static rule: ok"]) == CompatReport(compatible=True, reasons=["static rule: ok"])
    assert incompatible("too old") == CompatReport(compatible=False, reasons=["too old"])
    assert incompatible(("a", "b")).reasons == ["a", "b"]
