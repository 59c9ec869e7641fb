"""Helpers only tests use (what several test modules share, so that no test module imports another). What tests
and benchmarks share (paths, the gunicorn launcher, load drivers, raw HTTP) is benchmarks/harness/."""
