"""The Ray engine (issue 17) against the local engine, with a real local Ray of 2 CPUs started once for
the module: for JSONL, CSV and Parquet and for a rollout task and an echo task, on 20,000 rows with a
few bad rows, the Ray engine's part files hold the local engine's rows (order restored by id, and by
the part names); a directory of part files as input; an unreachable cluster is a clear exit 2."""

from __future__ import annotations

import csv
import io
import os
import random
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

ray = pytest.importorskip("ray")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from service.scoring.cli import main  # noqa: E402
from service.scoring.ray_engine import score_files  # noqa: E402
from tests.support.scoring import pick, run_cli  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
ROWS = 20_000
CHUNK = 2_000  # ten blocks per file: several actors' worth of work, and runs to put back in order


@pytest.fixture(scope="module")
def ray_address():
    """One local Ray for the module (2 CPUs as in CI, no dashboard); the engine reuses it in-process and
    CLI subprocesses attach to it through RAY_ADDRESS."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(
        num_cpus=2, include_dashboard=False, object_store_memory=300 * 2**20, logging_level="ERROR", log_to_driver=False
    )
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def ramp_rows(rng: random.Random) -> list:
    start, step = rng.uniform(-1, 1), rng.choice((-1, 1)) * rng.uniform(0.01, 0.2)
    return [round(start + i * step, 6) for i in range(rng.randint(3, 12))]


def echo_rows(rng: random.Random) -> list:
    return [rng.randint(0, 99) for _ in range(rng.randint(1, 20))]


CASES = {"echo": (echo_rows, []), "ramp": (ramp_rows, ["--steps", "3"])}
BAD = {101: [1e7], 4321: [], 19999: [5e7, 1.0, 2.0]}  # out of range, too short, out of range (last row)


def rows_for(task: str) -> list:
    make, _ = CASES[task]
    rng = random.Random(17)
    rows = [make(rng) for _ in range(ROWS)]
    for i, bad in BAD.items():
        rows[i] = [int(v) for v in bad] if task == "echo" and bad else list(bad)
    if task == "echo":
        rows[101] = [100]
    return rows


def write_input(folder: Path, task: str, fmt: str) -> Path:
    rows = rows_for(task)
    path = folder / f"{task}.{fmt}"
    if fmt == "jsonl":
        lines = [orjson.dumps({"inputs": r, "id": i}) for i, r in enumerate(rows)]
        lines[777] = b'{"inputs": [1, 2'  # invalid JSON, placed by its line
        path.write_bytes(b"\n".join(lines) + b"\n")
    elif fmt == "csv":
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        text = buffer.getvalue().split("\n")
        text[555] = "1,x,3"  # not a number
        path.write_text("\n".join(text))
    else:
        pq.write_table(pa.table({"id": list(range(ROWS)), "inputs": rows}), path, row_group_size=3000)
    return path


def local_output(tmp_path: Path, models_dir: Path, task: str, path: Path, extra: list) -> Path:
    out = tmp_path / f"local-{path.name}"
    code = main([task, str(path), "-o", str(out), "--models-dir", str(models_dir), "-q", *extra])
    assert code == 1  # a few bad rows
    return out


def counts(path: Path, fmt: str) -> tuple[int, int]:
    """(rows, errors) of a local engine's output file."""
    if fmt == "parquet":
        table = pq.read_table(path)
        return table.num_rows, table.num_rows - table.column("error").null_count
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(path.read_text())))
        return len(rows), sum(row[0].startswith("error: ") for row in rows)
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    return len(rows), sum("error" in row for row in rows)


def parts(folder: Path) -> list[Path]:
    found = sorted(folder.iterdir())
    assert found and all(p.name.startswith("part-") for p in found)
    return found


def by_id(rows: list[dict]) -> dict:
    return {row.get("id"): row for row in rows}  # the unreadable JSON line has no id: key None


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
@pytest.mark.parametrize("task", ["echo", "ramp"])
def test_ray_engine_output_equals_local_engine(tmp_path, ray_address, models_copy, task, fmt):
    task = pick(task)
    path = write_input(tmp_path, task, fmt)
    extra = CASES[task][1]
    local = local_output(tmp_path, models_copy, task, path, extra)
    started = time.monotonic()
    summary = score_files(
        task,
        str(path),
        str(tmp_path / "ray"),
        models_dir=str(models_copy),
        chunk_rows=CHUNK,
        steps=int(extra[1]) if extra else None,
    )
    assert summary.rows >= ROWS - 1 and summary.errors >= len(BAD)  # CSV skips the empty row, as locally
    assert time.monotonic() - started < 300
    assert (summary.rows, summary.errors) == counts(local, fmt)
    assert summary.files_out >= ROWS // CHUNK  # Ray spread the rows over many blocks
    got = parts(tmp_path / "ray")
    if fmt == "parquet":
        ray_rows = pa.concat_tables([pq.read_table(p) for p in got]).to_pylist()
        local_rows = pq.read_table(local).to_pylist()
        errors = [r for r in local_rows if r["error"]]
        assert errors[0]["error"].startswith("row 102: ")
    else:
        ray_bytes = b"".join(p.read_bytes() for p in got)
        assert ray_bytes == local.read_bytes()  # sorted part names restore input order exactly
        if fmt == "csv":
            return  # CSV rows carry no id: the byte equality above is the row-for-row check
        ray_rows = [orjson.loads(line) for line in ray_bytes.splitlines()]
        local_rows = [orjson.loads(line) for line in local.read_bytes().splitlines()]
        assert [r for r in local_rows if "error" in r][1]["error"].startswith("line 778: invalid JSON")
    # order restored by id: every row's answer matches, whatever order the part files came in
    assert by_id(ray_rows) == by_id(local_rows) and len(ray_rows) == ROWS


def test_directory_of_part_files_names_each_file_in_errors(tmp_path, ray_address, models_copy):
    task = pick("echo")
    rows = rows_for(task)[:6000]
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(3):
        block = rows[k * 2000 : (k + 1) * 2000]
        (folder / f"part-{k}.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in block))
    (folder / "_SUCCESS").write_bytes(b"")  # markers like this are not data
    expected = b""
    for k in range(3):
        out = local_output(tmp_path, models_copy, task, folder / f"part-{k}.jsonl", []) if k != 1 else None
        if out is None:  # part-1 holds no bad row: exit 0
            out = tmp_path / "local-part-1.jsonl"
            assert (
                main([task, str(folder / "part-1.jsonl"), "-o", str(out), "--models-dir", str(models_copy), "-q"]) == 0
            )
        expected += out.read_bytes().replace(b'"error":"line ', f'"error":"part-{k}.jsonl line '.encode())
    # as a file:// URI: the path goes through pyarrow's filesystems, as s3:// or gs:// would
    summary = score_files(task, f"file://{folder}", str(tmp_path / "ray"), models_dir=str(models_copy), chunk_rows=500)
    assert (summary.files_in, summary.rows, summary.errors) == (3, 6000, 2)
    assert b"".join(p.read_bytes() for p in parts(tmp_path / "ray")) == expected
    assert b'"error":"part-0.jsonl line 102: /0: 100 is outside' in expected
    assert b'"error":"part-2.jsonl line 322: length 0 is outside' in expected


def test_cli_attaches_to_a_cluster_and_keeps_exit_codes(tmp_path, ray_address, models_copy):
    task = pick("echo")
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"[1, 2, 3]\n[4, 5]\n[100]\n")
    env = {"RAY_ADDRESS": ray_address}
    done = run_cli(task, path, "-o", tmp_path / "out", "--engine", "ray", "--models-dir", models_copy, env=env)
    assert done.returncode == 1, done.stderr
    assert b"3 rows, 1 error in" in done.stderr and b"on Ray: 2 actors, 2 CPUs" in done.stderr
    # no error-level line from Ray on a run that worked (was core_worker.cc's actor-restart warning)
    assert b"core_worker.cc" not in done.stderr and not re.search(rb"^\[[^]]* E \d+ \d+\]", done.stderr, re.M)
    assert (
        b"".join(p.read_bytes() for p in parts(tmp_path / "out"))
        == b'{"output":[1,2,3]}\n{"output":[4,5]}\n{"error":"line 3: /0: 100 is outside 0..99 for task echo"}\n'
    )
    again = run_cli(
        task,
        path,
        "-o",
        tmp_path / "out2",
        "--engine",
        "ray",
        "--allow-errors",
        "-q",
        "--models-dir",
        models_copy,
        env=env,
    )
    assert again.returncode == 0 and b" rows, " not in again.stderr  # -q: no summary line
    refused = run_cli(task, path, "-o", tmp_path / "out", "--engine", "ray", "--models-dir", models_copy, env=env)
    assert refused.returncode == 2 and b"is not empty" in refused.stderr
    missing = run_cli(
        task, tmp_path / "nope.jsonl", "-o", tmp_path / "out3", "--engine", "ray", "--models-dir", models_copy, env=env
    )
    assert missing.returncode == 2 and b"no such file" in missing.stderr


def test_unreachable_cluster_is_a_clear_error_and_exit_2_within_seconds(tmp_path, models_copy):
    task = pick("echo")
    (tmp_path / "in.jsonl").write_bytes(b"[1, 2, 3]\n")
    with socket.socket() as s:  # a port on this machine that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    done = run_cli(
        task,
        tmp_path / "in.jsonl",
        "-o",
        tmp_path / "out",
        "--engine",
        "ray",
        "--ray-address",
        f"127.0.0.1:{port}",
        "--models-dir",
        models_copy,
    )
    assert time.monotonic() - started < 60
    assert done.returncode == 2
    assert f"cannot reach the Ray cluster at 127.0.0.1:{port}".encode() in done.stderr, done.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    env_done = subprocess.run(
        [
            sys.executable,
            "-m",
            "service.scoring",
            task,
            str(tmp_path / "in.jsonl"),
            "-o",
            str(tmp_path / "out4"),
            "--engine",
            "ray",
            "--models-dir",
            str(models_copy),
        ],
        capture_output=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "RAY_ADDRESS": f"127.0.0.1:{port}"},
    )
    assert env_done.returncode == 2 and b"cannot reach the Ray cluster" in env_done.stderr
