import pytest

import tagship_plugin as tp
from tagship_plugin import Err, HealthStatus
from tagship_plugin.testing import FakeHost, context, event, respond

RAISES = """
    from tagship_plugin import health_check, healthy


    @health_check
    def check(ctx):
        verdict = ask(ctx.component)
        return healthy(verdict)


    def ask(component):
        raise ValueError("the registry said no")
"""


def test_the_decorator_defines_the_export_and_returns_the_function(load_app):
    app = load_app({"app.py": """
        from tagship_plugin import health_check, healthy

        @health_check
        def check(ctx):
            return healthy(f"{ctx.component} is fine")
    """})
    assert callable(app.check) and app.check.__name__ == "check"
    assert app.Health.__tagship_export__ is app.check
    assert app.check(context()).status == HealthStatus.HEALTHY  # the plain function, for tests
    assert app.Health().check(context()).reason == "registry is fine"  # what componentize-py calls


def test_an_exception_becomes_err_with_type_message_and_the_authors_innermost_line(load_app):
    app = load_app({"app.py": RAISES})
    with FakeHost() as host, pytest.raises(Err) as failure:
        app.Health().check(context())
    assert failure.value.value == "ValueError: the registry said no (at app.py:11)"
    # the full path of frames goes to the runner's log at debug level
    assert host.messages("debug") == [
        "check() failed: ValueError: the registry said no (at app.py:11); traceback, innermost "
        "last: app.py:6 in check, app.py:11 in ask"
    ]


def test_without_a_host_the_err_is_still_raised(load_app):
    app = load_app({"app.py": RAISES})
    with pytest.raises(Err, match="the registry said no"):
        app.Health().check(context())


def test_frames_in_the_sdk_and_the_standard_library_are_skipped(load_app):
    app = load_app({"app.py": """
        import json

        from tagship_plugin import health_check, require_config, get, healthy

        @health_check
        def check(ctx):
            if ctx.stage == "json":
                json.loads("{not json")
            if ctx.stage == "body":
                get("http://x/").json()
            require_config("url")
    """})
    with FakeHost(responses={"http://x/": respond(200, "<html>")}):
        with pytest.raises(Err) as failure:
            app.Health().check(context())
        assert failure.value.value == (
            "ConfigError: missing config key `url`: set it under [plugins.NAME.config] (at app.py:11)"
        )
        with pytest.raises(Err) as failure:
            app.Health().check(context(stage="json"))
        assert failure.value.value.startswith("JSONDecodeError: Expecting property name")
        assert failure.value.value.endswith("(at app.py:8)")
        with pytest.raises(Err) as failure:
            app.Health().check(context(stage="body"))
        assert failure.value.value == (
            "ResponseError: response body is not JSON (Expecting value: line 1 column 1 (char 0)): "
            "<html> (at app.py:10)"
        )


def test_a_helper_module_of_the_author_is_named_by_its_path_in_the_app(load_app):
    app = load_app({
        "app.py": """
            from tagship_plugin import health_check
            from checks.parse_v1 import parse

            @health_check
            def check(ctx):
                return parse(ctx.version)
        """,
        "checks/__init__.py": "",
        "checks/parse_v1.py": """
            def parse(version):
                return {}["missing"]
        """,
    })
    with pytest.raises(Err) as failure:
        app.Health().check(context())
    assert failure.value.value == "KeyError: 'missing' (at checks/parse_v1.py:2)"


def test_an_exception_without_message_shows_its_type_only(load_app):
    app = load_app({"app.py": """
        from tagship_plugin import health_check

        @health_check
        def check(ctx):
            assert ctx.stage == "gprd"
    """})
    with pytest.raises(Err) as failure:
        app.Health().check(context())
    assert failure.value.value == "AssertionError (at app.py:5)"


def test_an_err_raised_by_the_author_passes_unchanged(load_app):
    app = load_app({"app.py": """
        from tagship_plugin import Err, health_check

        @health_check
        def check(ctx):
            raise Err("exactly this text")
    """})
    with pytest.raises(Err) as failure:
        app.Health().check(context())
    assert failure.value.value == "exactly this text"


def test_returning_something_else_than_a_report_is_an_error_at_the_functions_line(load_app):
    app = load_app({"app.py": """
        from tagship_plugin import compat_check, health_check

        @health_check
        def check(ctx):
            return "healthy"
    """})
    with pytest.raises(Err) as failure:
        app.Health().check(context())
    assert failure.value.value == (
        "TypeError: check() returned a str, not a HealthReport: return healthy(...), "
        "unhealthy(...) or unknown(...) (at app.py:3)"  # the decorated function
    )


def test_a_notifier_exports_notify_and_its_exceptions_become_err(load_app):
    app = load_app({"app.py": """
        from tagship_plugin import notifier, post_json

        @notifier
        def notify(event):
            post_json("http://hook/", {"kind": event.kind.name, "stage": event.context.stage})\
                .raise_for_status()
    """})
    with FakeHost(responses={"http://hook/": 204}) as host:
        assert app.Notify().notify(event("stage-failed", stage="gprd")) is None
    assert host.requests[0].json() == {"kind": "STAGE_FAILED", "stage": "gprd"}
    with FakeHost(responses={"http://hook/": respond(500, "boom")}):
        with pytest.raises(Err) as failure:
            app.Notify().notify(event())
    assert failure.value.value == "HttpStatusError: HTTP 500: boom (at app.py:5)"


def test_a_compat_check_exports_check(load_app):
    app = load_app({"app.py": """
        from tagship_plugin import compat_check, compatible, incompatible

        @compat_check
        def check(ctx):
            if ctx.app_version is None:
                return incompatible(["app version unknown"])
            return compatible([f"app {ctx.app_version} takes {ctx.version}"])
    """})
    assert app.Compat().check(context()).compatible is False
    assert app.Compat().check(context(app_version="v17.5.0")).reasons == [
        "app v17.5.0 takes v3.1.0"
    ]


def test_two_exports_of_one_kind_or_a_clash_with_a_class_are_refused(load_app):
    with pytest.raises(TypeError, match="two @health_check functions"):
        load_app({"app.py": """
            from tagship_plugin import health_check, healthy

            @health_check
            def one(ctx):
                return healthy("1")

            @health_check
            def two(ctx):
                return healthy("2")
        """})
    with pytest.raises(TypeError, match="already defines"):
        load_app({"app.py": """
            from tagship_plugin import notifier

            class Notify:
                pass

            @notifier
            def notify(event):
                pass
        """})


def test_format_exception_is_public():
    try:
        raise RuntimeError("x")
    except RuntimeError as e:
        text = tp.format_exception(e)
    assert text.startswith("RuntimeError: x (at test_exports.py:")
