"""Parquet for the local engine (issue 17): a list column in, id/output/top_k/error columns out, bad rows
reported in place as in JSONL, memory flat over row groups; pyarrow and Ray stay optional imports."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from benchmarks.harness.load import cli_peak_rss_mib  # noqa: E402
from benchmarks.harness.paths import ROOT  # noqa: E402
from service.core.predictor import Predictor  # noqa: E402
from service.scoring.cli import main  # noqa: E402
from tests.support.scoring import TIMEOUT, expected, pick, run_cli, valid_sequences  # noqa: E402


@pytest.fixture(scope="module")
def task() -> str:
    return pick("echo", "echo-lag")


@pytest.fixture(scope="module")
def predictor(models_copy, task) -> Predictor:
    return Predictor.load(models_copy / task)


def write_parquet(path: Path, columns: dict, row_group_size: int = 1000) -> Path:
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)
    return path


def test_round_trip_keeps_ids_order_and_reports_bad_rows_by_row_number(tmp_path, models_copy, task, predictor):
    seqs = valid_sequences(predictor, 3000, seed=11)
    high = int(predictor.manifest["input"]["high"])
    inputs = list(seqs)
    inputs[10] = [high + 1] + seqs[10][1:]  # row 11: a value out of range at /0
    inputs[1500] = []  # row 1501: too short
    inputs[2999] = None  # row 3000: a null sequence
    ids = [f"r{i}" for i in range(3000)]
    path = write_parquet(tmp_path / "in.parquet", {"id": ids, "inputs": inputs})
    out = tmp_path / "out.parquet"
    code = main([task, str(path), "-o", str(out), "--models-dir", str(models_copy), "--chunk-rows", "700", "-q"])
    assert code == 1
    table = pq.read_table(out)
    assert table.column_names == ["id", "output", "error"]
    assert table.schema.field("output").type == pa.list_(pa.int64())
    rows = table.to_pylist()
    assert [r["id"] for r in rows] == ids
    good = [i for i in range(3000) if i not in (10, 1500, 2999)]
    assert [rows[i]["output"] for i in good] == expected(predictor, [seqs[i] for i in good])
    assert all(rows[i]["error"] is None for i in good)
    assert rows[10]["output"] is None and rows[10]["error"].startswith(f"row 11: /0: {high + 1} is outside")
    assert rows[1500]["error"].startswith("row 1501: length 0 is outside")
    assert rows[2999]["error"] == "row 3000: expected a sequence (a JSON array of numbers), got null"
    # the same sequences as JSONL array lines get the same errors, placed by line instead of row
    (tmp_path / "in.jsonl").write_bytes(b"".join(orjson.dumps(s) + b"\n" for s in inputs[:-1]))
    main([task, str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out.jsonl"), "--models-dir", str(models_copy), "-q"])
    as_jsonl = [orjson.loads(line) for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    assert [r.get("error", "").replace("line", "row", 1) or None for r in as_jsonl] == [r["error"] for r in rows[:-1]]


def test_only_list_column_needs_no_name_and_rollout_top_k_columns(tmp_path, models_copy):
    task = pick("alternating")
    predictor = Predictor.load(models_copy / task)
    seqs = valid_sequences(predictor, 200, seed=12)
    path = write_parquet(tmp_path / "in.parquet", {"seq": seqs}, row_group_size=64)
    out = tmp_path / "rolled.parquet"
    assert main([task, str(path), "-o", str(out), "--models-dir", str(models_copy), "--steps", "3", "-q"]) == 0
    rolled = pq.read_table(out)
    assert rolled.column_names == ["output", "error"]
    assert rolled.column("output").to_pylist() == expected(predictor, seqs, steps=3)
    out = tmp_path / "top.parquet"
    assert main([task, str(path), "-o", str(out), "--models-dir", str(models_copy), "--top-k", "2", "-q"]) == 0
    tops = pq.read_table(out)
    assert tops.schema.field("output").type == pa.int64()
    assert tops.column("top_k").to_pylist() == predictor.predict(predictor.codec.check(seqs), top_k=2)["top_k"]


def test_parquet_usage_errors_exit_2(tmp_path, models_copy, task):
    path = write_parquet(tmp_path / "two.parquet", {"a": [[1], [2]], "b": [[3], [4]]})
    done = run_cli(task, path, "-o", tmp_path / "out.parquet", "--models-dir", models_copy)
    assert done.returncode == 2 and b"name the sequences with --column" in done.stderr
    done = run_cli(task, path, "-o", tmp_path / "out.parquet", "--column", "c", "--models-dir", models_copy)
    assert done.returncode == 2 and b"no column 'c'" in done.stderr
    done = run_cli(task, "-", "--format", "parquet", "--models-dir", models_copy, stdin=path.read_bytes())
    assert done.returncode == 2 and b"not stdin" in done.stderr
    (tmp_path / "fake.parquet").write_bytes(b"[1, 2, 3]\n")
    done = run_cli(task, tmp_path / "fake.parquet", "-o", tmp_path / "out.parquet", "--models-dir", models_copy)
    assert done.returncode == 2 and b"not a Parquet file" in done.stderr


def test_missing_extras_are_named_and_the_service_never_imports_them(tmp_path, models_copy, task):
    path = write_parquet(tmp_path / "in.parquet", {"inputs": [[1, 2]]})
    # a module set to None in sys.modules cannot be imported: exactly what a machine without the extra sees
    script = (
        "import sys; sys.modules['pyarrow'] = sys.modules['ray'] = None; "
        "from service.scoring.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    for args, message in (
        ([str(path)], b"pip install 'toyseq[parquet]'"),
        ([str(path), "--engine", "ray"], b"pip install 'toyseq[ray]'"),
    ):
        done = subprocess.run(
            [sys.executable, "-c", script, task, *args, "-o", str(tmp_path / "out"), "--models-dir", str(models_copy)],
            cwd=ROOT,
            capture_output=True,
            timeout=TIMEOUT,
        )
        assert done.returncode == 2 and message in done.stderr, done.stderr
    probe = (
        "import sys; from service import create_app; create_app({'models_dir': sys.argv[1]}); "
        "from service.scoring.cli import score_rows; list(score_rows(sys.argv[2], [[1, 2]], models_dir=sys.argv[1])); "
        "print(sorted(m for m in ('ray', 'pyarrow') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(models_copy), task],
        cwd=ROOT,
        capture_output=True,
        timeout=TIMEOUT,
        check=True,
    )
    assert done.stdout.strip() == b"[]"


def peak_rss_mib(*args: str) -> float:
    return cli_peak_rss_mib(*args, timeout=TIMEOUT)


@pytest.mark.slow
def test_memory_stays_flat_on_a_parquet_file_of_200_chunks(tmp_path, models_copy, task, predictor):
    """20 chunks vs 200 chunks of 1024 rows: the steady state (every in-flight chunk's buffers) is
    reached well within the first file; 184k more rows held at once would cost far more than 20 MiB."""
    chunk = 1024
    seqs = valid_sequences(predictor, 2 * chunk, seed=13)
    sizes = {}
    started = time.monotonic()
    for name, repeat in (("small", 10), ("large", 100)):
        path = write_parquet(tmp_path / f"{name}.parquet", {"inputs": seqs * repeat}, row_group_size=chunk)
        sizes[name] = peak_rss_mib(
            task,
            str(path),
            "-o",
            str(tmp_path / f"{name}.out.parquet"),
            "--models-dir",
            str(models_copy),
            "--chunk-rows",
            str(chunk),
        )
    assert pq.read_metadata(tmp_path / "large.out.parquet").num_rows == 200 * chunk
    assert sizes["large"] - sizes["small"] < 20, sizes
    assert time.monotonic() - started < TIMEOUT
