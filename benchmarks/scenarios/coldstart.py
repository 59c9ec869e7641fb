"""Cold start: `gunicorn -c python:service.server.gunicorn_conf 'service:create_app()'` process start to the first
GET /readyz 200 (every worker has loaded and warmed every model), with the bare Flask floor for reference.

    python -m benchmarks.scenarios.coldstart
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.harness.server import FLOOR_APP, TOYSEQ_APP, Server
from benchmarks.harness.timing import QUICK, Sizes


def run(models_dir: Path, sizes: Sizes, log_dir: Path) -> dict:
    toyseq, floor = [], []
    for _ in range(sizes.cold_starts):  # alternating, like the HTTP runs
        for app, times in ((TOYSEQ_APP, toyseq), (FLOOR_APP, floor)):
            with Server(log_dir / "coldstart.log", models_dir=models_dir, app=app) as server:
                times.append(server.ready_seconds)
    tasks = sorted(p.name for p in models_dir.iterdir() if (p / "manifest.json").is_file())
    return {
        "tasks": tasks,
        "toyseq_s": statistics.median(toyseq),
        "floor_s": statistics.median(floor),
        "toyseq_runs_s": toyseq,
        "floor_runs_s": floor,
    }


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        print(run(Path("models").resolve(), QUICK, Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
