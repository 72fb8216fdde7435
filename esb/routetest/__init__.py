"""Route tests (``esb test``): a route's real steps on a given input, in-line endpoints mocked.

A ``*_test.yaml`` file beside the routes lists inputs, replies for the in-line
endpoints the route calls, and what must come out: the status, the final
message, and the deliveries queued per destination. See docs/route-tests.md.
"""

from esb.routetest.loader import find_test_files, load_test_file
from esb.routetest.runner import Report, Runner, TestResult, run_tests

__all__ = ["Report", "Runner", "TestResult", "find_test_files", "load_test_file", "run_tests"]
