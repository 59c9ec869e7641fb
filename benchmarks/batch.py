"""Batch scoring rows/s of the `toyseq-score` CLI, local and remote (--url to gunicorn), and one request per
row for reference; the steps are benchmarks.scoring's, sized by the run.

    python -m benchmarks.scoring   # the standalone, fuller version
"""

from __future__ import annotations

from pathlib import Path

from service.core.manifest import load

from . import scoring
from .timing import Sizes

TASK = "echo-lag"


def run(models_dir: Path, sizes: Sizes, tmp: Path) -> dict:
    rows = sizes.scoring_rows
    path = tmp / "rows.jsonl"
    head = scoring.write_rows(path, load(models_dir / TASK), rows)
    local_s, local_cpu = scoring.cli(TASK, str(path), "--models-dir", str(models_dir))
    with scoring.start_gunicorn(models_dir, 2, tmp / "scoring-gunicorn.log") as server:
        sent, per_row_s = scoring.per_row(server.url, TASK, head[: sizes.scoring_sample], sizes.http_seconds * 2)
        remote_s, _ = scoring.cli(TASK, str(path), "--url", server.url, "--concurrency", "4")
    return {
        "task": TASK,
        "rows": rows,
        "lengths": "2..30",
        "local_rows_per_s": rows / local_s,
        "local_seconds": local_s,
        "local_cpu_seconds": local_cpu,
        "remote_rows_per_s": rows / remote_s,
        "remote_seconds": remote_s,
        "one_request_per_row_rows_per_s": sent / per_row_s,
    }
