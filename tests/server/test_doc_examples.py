"""README.md and docs/*.md say what a new user will see: every command, curl and Python example in them is
run here, or accounted for by a rule naming the test that covers it (or why nothing here can), and the
parts that restate what the code computes match `python -m benchmarks.docs`.

- Every command line of a bash/sh/console block, and of an indented block that starts with a program, must
  match a rule in RULES; a new command with no rule fails `test_every_documented_command_is_accounted_for`.
- The service for the examples is started by the docs' own command (docs/api.md's `gunicorn ...`), on a free
  127.0.0.1 port that replaces `localhost:8000` in every example (and its gRPC port `localhost:8001`).
- `$ curl` examples run with curl and their printed answer must be the real one (status line and headers
  too, for `-i`); `toyseq-score` lines run in a folder of small rows files; Python blocks run, and a line
  `EXPR  # VALUE` must give VALUE when VALUE is a literal (numpy's `array(...)` included).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.support.paths import ROOT
from tests.support.server import free_port, server_env

PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(?P<lang>\w*)\n(?P<body>.*?)^```", re.M | re.S)
INDENTED = re.compile(r"(?:^\n)(?P<body>(?:^    \S.*\n)+)", re.M)
SHELLS = {"bash", "sh", "console", "shell"}
PROGRAMS = re.compile(
    r"^(\.venv/bin/|[A-Z_]+=\S+ |nice -n \d+ )*(python3?|pip|toyseq-score|gunicorn|curl|docker|podman|kubectl|"
    r"kustomize|ray|apt-get|cat|cd|pytest|ruff|mypy|pre-commit|from |import )\b"
)
VENV_BIN = str(Path(sys.executable).parent)
URL = re.compile(r"(localhost|127\.0\.0\.1):8000")
GRPC_URL = re.compile(r"(localhost|127\.0\.0\.1):8001")  # the gRPC port's examples (TOYSEQ_GRPC_BIND's default)
GRPC_TARGET: dict[str, str] = {}  # set by the `service` fixture: where its gRPC port is

# What happens to each documented command: RUN (this module runs it) or the test, tool or reason that
# accounts for it. First match wins; a rule naming a test file is checked to exist.
RUN = "run here"
RULES: list[tuple[str, str]] = [
    (r"^\$ curl ", RUN),
    (r"^toyseq-score .*(s3|gs)://", "not run: needs object storage; the Ray engine itself: tests/scoring/test_ray.py"),
    (r"^(RAY_ADDRESS=\S+ )?toyseq-score .*(--engine ray|/shared/)", "tests/scoring/test_ray.py"),
    (r"^(cat \S+ \| )?toyseq-score ", RUN),
    (r"^gunicorn -c python:service\.server\.gunicorn_conf 'service:create_app\(\)'$", RUN),
    (r"^from service\.scoring\.ray_engine ", "not run: reads object storage; tests/scoring/test_ray.py"),
    (r"^(from |import )", RUN),  # Python blocks
    (
        r"^python3 -m venv \.venv && \.venv/bin/pip install -e '\.\[training,test,ray\]' && \.venv/bin/python -m pytest$",
        ".ci/run",
    ),
    (
        r"^python3 -m venv \.venv && \.venv/bin/pip install -e \. && \.venv/bin/gunicorn ",
        ".ci/run installs the same way; the gunicorn command is docs/api.md's, run here",
    ),
    (r"^python3 -m venv \.venv && \.venv/bin/pip install -e '\.\[training,test\]'$", ".ci/run"),
    (r"^pip install 'toyseq\[(parquet|ray)\]'", "not run: installs an extra (.ci/run installs them)"),
    (r"^apt-get install", "not run: installs a Debian package (.ci/run does)"),
    (r"^\.venv/bin/python -m pytest", ".ci/run runs the suite"),
    (r"^\.venv/bin/ruff check", "tests/test_lint.py"),
    (r"^\.venv/bin/python -m benchmarks\.docs", "tests/server/test_doc_examples.py"),
    (r"^(\.venv/bin/)?python -m benchmarks( --quick| --smoke)?( |$)", "tests/benchmarks/test_benchmarks.py"),
    (r"^(\.venv/bin/)?python -m benchmarks\.regression", "tests/benchmarks/test_benchmarks.py"),
    (r"^(\.venv/bin/)?python -m benchmarks\.ab ", "tests/benchmarks/test_ab.py"),
    (r"^(nice -n \d+ )?(\.venv/bin/)?python -m benchmarks\.ray_scoring", "tests/benchmarks/test_benchmarks.py"),
    (
        r"^(\.venv/bin/)?python -m benchmarks\.(peers|cost|scoring)",
        "not run: a benchmark for publishable figures (minutes; peers installs other servers); "
        "tests/benchmarks/test_benchmarks.py runs the suite's smoke mode",
    ),
    (r"^\.venv/bin/python -m training (train|evaluate)", "tests/training/test_models.py"),
    (r"^(docker|podman) (build|run)", "tests/server/test_container.py"),
    (r"^kubectl apply -k deploy/k8s", "tests/deploy/test_kube_play.py"),
    (r"^kubectl (create secret|port-forward)", "not run: needs a Kubernetes cluster; tests/deploy/test_kube_play.py"),
    (r"^podman build --format docker -t REGISTRY", "tests/deploy/test_kube_play.py"),
    (r"^cd deploy/k8s && kustomize edit", "not run: needs standalone kustomize and a registry (docs/kubernetes.md)"),
    (r"^ray start", "not run: starts a Ray cluster; tests/scoring/test_ray.py starts a local one"),
    (r"^toyseq-models ", "tests/server/test_model_control.py (the CLI against real gunicorn workers)"),
    (r"^export TOYSEQ_", "not run: sets the server's environment for the commands after it"),
    (r"^cp (/tmp/)?new/", "tests/server/test_model_control.py (replaces a task's files, then loads them)"),
    (
        r"^gunicorn -c python:service\.server\.gunicorn_conf 'service:create_app\(\)' &$",
        "docs/api.md's command, run here",
    ),
    (
        r"^docker exec toyseq python -m service\.server\.cli",
        "not run: needs a Docker engine; the CLI: tests/server/test_model_control.py",
    ),
    (
        r"^(for pod in|kubectl exec|done$)",
        "not run: needs a Kubernetes cluster; the CLI: tests/server/test_model_control.py",
    ),
    (r"^python -m training train echo --seed 1", "tests/training/test_models.py (training takes a seed)"),
]


@dataclass(frozen=True)
class Example:
    page: str
    kind: str  # "shell" or "python"
    text: str  # one command (continuations joined), or a whole Python block

    def __str__(self) -> str:
        return f"{self.page}: {self.text.splitlines()[0][:100]}"


def examples() -> list[Example]:
    found = []
    for page in PAGES:
        text = (ROOT / page).read_text()
        for match in FENCE.finditer(text):
            lang, body = match.group("lang"), match.group("body")
            if lang == "python":
                found.append(Example(page, "python", body))
            elif lang in SHELLS:
                found += [Example(page, "shell", c) for c in _commands(body, console=lang == "console")]
        for match in INDENTED.finditer(text):
            body = "\n".join(line[4:] for line in match.group("body").splitlines())
            if re.match(r"(from|import) ", body):
                found.append(Example(page, "python", body))
            elif PROGRAMS.match(body):
                found += [Example(page, "shell", c) for c in _commands(body, console=False)]
    return found


def _commands(body: str, console: bool) -> list[str]:
    """One entry per command line (backslash continuations joined, comments dropped); in a console block,
    only the `$ ` lines are commands (kept with their `$ `), the rest is their output."""
    out = []
    for line in body.replace("\\\n", " ").splitlines():
        if console and not line.startswith("$ "):
            continue
        line = _strip_comment(line).strip()
        if line:
            out.append(line)
    return out


def _strip_comment(line: str) -> str:
    """The line without a trailing `# comment` (a # inside quotes stays)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def rule_for(example: Example) -> str | None:
    first = example.text.lstrip().splitlines()[0]
    for pattern, how in RULES:
        if re.search(pattern, first):
            return how
    return None


ALL = examples()


def test_the_pages_hold_the_examples_this_module_runs():
    kinds = {(e.page, e.kind) for e in ALL}
    assert ("docs/api.md", "python") in kinds and ("docs/scoring.md", "python") in kinds
    assert sum(e.text.startswith("$ curl") for e in ALL) >= 7
    assert sum("toyseq-score" in e.text and rule_for(e) == RUN for e in ALL) >= 7


@pytest.mark.parametrize("example", ALL, ids=str)
def test_every_documented_command_is_accounted_for(example):
    how = rule_for(example)
    assert how is not None, f"{example}: no rule says how this command is checked; add one to RULES"
    for path in re.findall(r"(?:tests/[\w/]+\.py|\.ci/run)", how):
        assert (ROOT / path).is_file(), f"{example}: the rule names {path}, which does not exist"


def test_generated_parts_match_the_code():
    """`python -m benchmarks.docs --check`: models, budgets, the over-budget text, v2 answers, benchmark ratios."""
    from benchmarks import docs

    changed = docs.differences(ROOT)
    assert not changed, "run `python -m benchmarks.docs`; these pages differ from the code: " + ", ".join(
        str(p.relative_to(ROOT)) for p in changed
    )


def test_the_generator_notices_a_stale_figure(tmp_path):
    """A generated block or inline value edited by hand is put back, and --check would fail."""
    from benchmarks import docs

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "peers.json").write_text((ROOT / "docs" / "peers.json").read_text())
    (tmp_path / "docs" / "new-bench.json").write_text(json.dumps({"command": "python -m benchmarks.new", "x": [1.5]}))
    (tmp_path / "models").symlink_to(ROOT / "models")
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "floor <!-- value: docs/peers.json ratios.floor.one_rps.median .2fx -->9.75x<!-- /value -->,"
        " new <!-- value: docs/new-bench.json x.0 .1f -->9.9<!-- /value -->\n"
        "<!-- generated: benchmark-runs -->\nstale\n<!-- end generated -->\n"
        "<!-- generated: budget -->\n<!-- end generated -->\n"
    )
    changed = docs.differences(tmp_path)
    assert list(changed) == [page]
    generated = changed[page][1]
    floor = json.loads((ROOT / "docs" / "peers.json").read_text())["ratios"]["floor"]["one_rps"]["median"]
    assert f"-->{floor:.2f}x<!--" in generated and "-->1.5<!--" in generated
    assert "`python -m benchmarks.new`" in generated and "stale" not in generated
    assert re.search(r"\| `sum-first-two` \| 3 \| 9,221 \|", generated)  # 10,000 rows are over the budget
    page.write_text("<!-- generated: no-such-block -->\n<!-- end generated -->\n")
    with pytest.raises(docs.DocsError, match="unknown generated block"):
        docs.differences(tmp_path)


def _documented_defaults(page: str) -> dict[str, str]:
    """`TOYSEQ_*` variable -> the default a page's tables give (a row may list several, in order)."""
    text = (ROOT / page).read_text()
    documented = {}
    for m in re.finditer(r"^\| (`TOYSEQ_[^|]*) \| ([^|]*) \|", text, re.M):
        keys = re.findall(r"`(TOYSEQ_\w+)`", m.group(1))
        values = re.findall(r"`([^`]*)`", m.group(2)) or [m.group(2).strip()] * len(keys)
        documented.update(zip(keys, values))
    return documented


@pytest.mark.parametrize("page", ["README.md", "docs/operations.md"])
def test_configuration_tables_give_the_real_defaults(page):
    """README lists every setting; every page that gives a default gives Config's."""
    from dataclasses import fields

    from service.server.config import Config

    documented = _documented_defaults(page)
    for f in fields(Config):
        name = "TOYSEQ_" + f.name.upper()
        if name not in documented:
            assert page != "README.md", f"README's configuration table lacks {name}"
            continue
        default = getattr(Config(), f.name)
        expected = ("1" if default else "0") if isinstance(default, bool) else str(default)
        if isinstance(default, float) and default.is_integer() and documented.get(name) == str(int(default)):
            expected = str(int(default))  # 10.0 documented as 10
        if documented[name] != "unset":
            assert documented[name] == expected, (
                f"{page}: {name} is documented as {documented[name]}, Config has {default}"
            )


# ---- running them


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """The service started by docs/api.md's own command, on a free port; stopped with SIGTERM."""
    start = next(e.text for e in ALL if e.page == "docs/api.md" and e.text.startswith("gunicorn "))
    port = free_port()
    env = server_env(port)
    GRPC_TARGET["target"] = env["TOYSEQ_GRPC_BIND"] = f"127.0.0.1:{free_port()}"
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    log = tmp_path_factory.mktemp("doc-service") / "gunicorn.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["bash", "-c", "exec " + start], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if requests.get(url + "/readyz", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("the documented gunicorn command did not become ready:\n" + log.read_text()[-3000:])
    yield url
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(40)
    except subprocess.TimeoutExpired:
        proc.kill()


def _here(text: str, url: str) -> str:
    text = GRPC_URL.sub(GRPC_TARGET.get("target", "127.0.0.1:8001"), text)
    return URL.sub(url.removeprefix("http://"), text)


CURLS = [e for e in ALL if e.text.startswith("$ curl")]


def _printed_answer(example: Example) -> list[str]:
    """The lines the page shows under a `$ curl` line, up to the block's end."""
    text = (ROOT / example.page).read_text()
    at = text.index(example.text)
    after = text[at + len(example.text) :].split("\n", 1)[1]
    return after[: after.index("```")].rstrip("\n").split("\n")


@pytest.mark.slow
@pytest.mark.parametrize("example", CURLS, ids=str)
def test_curl_examples_print_what_the_page_shows(service, example):
    done = subprocess.run(
        shlex.split(_here(example.text[2:], service)), capture_output=True, text=True, timeout=30, check=True
    )
    shown = _printed_answer(example)
    got = done.stdout.replace("\r\n", "\n").rstrip("\n").split("\n")
    if "-i" in shlex.split(example.text):  # status line and the headers shown, then the body
        head, body = got[: got.index("")], got[-1]
        for line in shown[: shown.index("")]:
            assert line in head
        shown, got = [shown[-1]], [body]
    expected, actual = json.loads(shown[-1]), json.loads(got[-1])
    sha = expected.get("model", {}).get("sha256", "")
    if sha.endswith(("...", "…")):  # an abbreviated hash: its start must match
        assert actual["model"]["sha256"].startswith(sha.rstrip(".…"))
        expected["model"] = actual["model"]
    assert actual == expected


@pytest.fixture(scope="module")
def rows_folder(tmp_path_factory):
    """rows.jsonl, rows.csv and rows.parquet that every documented task accepts, and ./models."""
    folder = tmp_path_factory.mktemp("doc-rows")
    rows = [[3, 1, 4], [5, 9, 2, 6]]
    (folder / "rows.jsonl").write_text('[3, 1, 4]\n{"inputs": [5, 9, 2, 6], "id": "a7"}\n')
    (folder / "rows.csv").write_text("3,1,4\n5,9,2,6\n")
    (folder / "models").symlink_to(ROOT / "models")
    pyarrow = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pyarrow.table({"inputs": rows}), folder / "rows.parquet")
    return folder


SCORING = [e for e in ALL if "toyseq-score" in e.text and rule_for(e) == RUN]


@pytest.mark.slow
@pytest.mark.parametrize("example", SCORING, ids=str)
def test_scoring_commands_run_as_written(service, rows_folder, example):
    env = {**os.environ, "PATH": VENV_BIN + os.pathsep + os.environ["PATH"], "PYTHONPATH": str(ROOT), "KEY": "k"}
    env.pop("TOYSEQ_MODELS_DIR", None)
    for name in ("answers.jsonl", "answers.csv", "answers.parquet"):
        (rows_folder / name).unlink(missing_ok=True)
    done = subprocess.run(
        ["bash", "-c", "set -o pipefail; " + _here(example.text, service)],
        cwd=rows_folder,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    written = re.search(r"(?:-o|>) (answers\.\w+)", example.text)
    if written and written.group(1).endswith(".parquet"):
        import pyarrow.parquet as pq

        assert pq.read_table(rows_folder / written.group(1)).num_rows == 2
    else:
        out = (rows_folder / written.group(1)).read_bytes() if written else done.stdout
        answers = out.decode().splitlines()
        assert len(answers) == 2 and not any('"error"' in a for a in answers), answers


PYTHON = [e for e in ALL if e.kind == "python" and rule_for(e) == RUN]


@pytest.mark.slow
@pytest.mark.parametrize("example", PYTHON, ids=str)
def test_python_examples_run_and_give_the_values_in_their_comments(service, example, monkeypatch):
    if "tritonclient" in example.text:
        pytest.importorskip("tritonclient.http")
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    checked = 0
    for node in ast.parse(_here(example.text, service)).body:
        code = ast.get_source_segment(_here(example.text, service), node)
        exec(compile(ast.Module([node], []), example.page, "exec"), namespace)
        comment = _value_comment(example.text, node)
        if isinstance(node, ast.Expr) and comment is not None:
            value = eval(compile(ast.Expression(node.value), example.page, "eval"), namespace)
            assert _plain(value) == _plain(comment), f"{code} gave {value!r}, the page says {comment!r}"
            checked += 1
    assert checked, "no `EXPR  # VALUE` line was checked"


def _value_comment(text: str, node: ast.stmt):
    """The literal after `# ` on the statement's last line, if it is one (`array(...)` read as a list)."""
    line = text.splitlines()[node.end_lineno - 1]
    if "  # " not in line:
        return None
    comment = line.split("  # ", 1)[1].strip()
    try:
        return eval(comment, {"__builtins__": {}}, {"array": lambda x: x, "null": None})  # literals only
    except Exception:
        return None


def _plain(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
