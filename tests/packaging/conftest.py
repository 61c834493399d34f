"""Packaging tests: see docs/packaging.md."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "packaging: builds the wheel with pip (cargo release build) and installs "
        "it into a fresh venv; skipped when OXWSGI_SKIP_PACKAGING=1",
    )
    # (what, seconds), appended to by test_pip_install.py
    config.oxwsgi_packaging_timings = []


def pytest_terminal_summary(terminalreporter, config):
    for what, seconds in getattr(config, "oxwsgi_packaging_timings", []):
        terminalreporter.write_line("[packaging] %s took %.1f s" % (what, seconds))
