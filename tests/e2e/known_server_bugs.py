"""Tests that fail because of a server bug (not a test bug), marked
xfail(strict=True) by conftest.py so that CI stays meaningful and the bug
stays visible in the summary (`-ra`). When a bug is fixed the test passes,
strict xfail turns that into a failure: delete its line here.

Key: the test's node id relative to tests/e2e ("file.py::name[param]");
a key without "[" matches every parametrization of that test.
HTTP corpus cases have their own table (KNOWN_FAILURES in
test_http_corpus.py).
"""

SERVER_BUGS: dict[str, str] = {
}
