"""benchmarks/README.md, the map of the benchmarks, against the scenarios that exist."""

from __future__ import annotations

import re

from benchmarks.harness.paths import ROOT


def test_the_map_names_every_scenario_and_every_command_it_names_exists():
    """benchmarks/README.md is the map: every runnable scenario has its row, and each module it cites exists."""
    text = (ROOT / "benchmarks" / "README.md").read_text()
    scenarios = {p.stem for p in (ROOT / "benchmarks" / "scenarios").glob("*.py") if p.stem != "__init__"}
    cited = set(re.findall(r"python -m benchmarks\.scenarios\.(\w+)", text))
    assert cited == scenarios
    for module in re.findall(r"python -m (benchmarks(?:\.\w+)*+)(?!\.<)", text):
        path = ROOT / module.replace(".", "/")
        assert path.with_suffix(".py").is_file() or (path / "__main__.py").is_file(), module
    for name in re.findall(r"`(harness/\w+\.py|reference/\w+\.py)`", text):
        assert (ROOT / "benchmarks" / name).is_file(), name
