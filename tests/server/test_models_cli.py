"""toyseq-models' command line: options before or after the command, TOYSEQ_URL, exit statuses. Against a real
service: tests/test_doc_examples.py runs every documented line, tests/server/store/test_model_control.py loads."""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchmarks.harness.paths import ROOT
from benchmarks.harness.server import free_port
from service.server.cli import DEFAULT_URL, parse


@pytest.mark.parametrize(
    "argv",
    [
        ["--url", "http://h:1", "--api-key", "k", "load", "echo"],
        ["load", "echo", "--url", "http://h:1", "--api-key", "k"],
        ["--url", "http://h:1", "load", "--api-key", "k", "echo"],
    ],
)
def test_options_go_before_or_after_the_command(argv):
    args = parse(argv)
    assert (args.command, args.task, args.url, args.api_key) == ("load", "echo", "http://h:1", "k")


def test_the_service_is_the_url_option_then_toyseq_url_then_the_default(monkeypatch):
    monkeypatch.delenv("TOYSEQ_URL", raising=False)
    assert parse(["index"]).url == DEFAULT_URL
    monkeypatch.setenv("TOYSEQ_URL", "http://env:2")
    assert parse(["index"]).url == "http://env:2" and parse(["stats"]).url == "http://env:2"
    assert parse(["index", "--url", "http://opt:3"]).url == "http://opt:3"
    assert parse(["--url", "http://opt:3", "index"]).url == "http://opt:3"


def test_an_unreachable_service_is_one_line_and_exit_2(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    done = subprocess.run(
        [sys.executable, "-m", "service.server.cli", "index"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "TOYSEQ_URL": url},
    )
    assert done.returncode == 2 and done.stderr.startswith(f"cannot reach {url}") and done.stderr.count("\n") == 1
    usage = subprocess.run(
        [sys.executable, "-m", "service.server.cli", "load"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert usage.returncode == 2 and "usage: toyseq-models load" in usage.stderr
