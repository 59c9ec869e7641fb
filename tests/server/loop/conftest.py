"""The loop's fixtures: the real Front on its own event loop (tests/support/framing.py)."""

from tests.support.framing import front_port  # noqa: F401 - a fixture of test_framing.py and test_upgrade.py
