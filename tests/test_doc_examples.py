"""README.md and docs/*.md say what a new user will see: every command, curl and Python example in them is
run here, or accounted for by a rule naming the test that covers it (or why nothing here can), and the
parts that restate what the code computes match `python -m tools.docs`.

- Every command line of a bash/sh/console block, and of an indented block that starts with a program, must
  match a rule in RULES; a new command with no rule fails `test_every_documented_command_is_accounted_for`.
- The service for the examples is started by the docs' own command (docs/api.md's `gunicorn ...`), on a free
  127.0.0.1 port that replaces `localhost:8000` in every example (and its gRPC port `localhost:8001`).
- `$ curl` examples run with curl and their printed answer must be the real one (status line and headers
  too, for `-i`); `toyseq-score` lines run in a folder of small rows files, away from the repository (no
  ./models: in-process scoring must find the models itself); `toyseq-models` lines run in page order against
  a second service started by the same command with model control on; Python blocks run, and a line
  `EXPR  # VALUE` must give VALUE when VALUE is a literal (numpy's `array(...)` included). A command written
  `.venv/bin/PROGRAM`, as run from the repository root, runs this test's own virtualenv's PROGRAM.
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

from benchmarks.harness.paths import ROOT
from benchmarks.harness.server import free_port, server_env

PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(?P<lang>\w*)\n(?P<body>.*?)^```", re.M | re.S)
INDENTED = re.compile(r"(?:^\n)(?P<body>(?:^    \S.*\n)+)", re.M)
SHELLS = {"bash", "sh", "console", "shell"}
PROGRAMS = re.compile(
    r"^(\.venv/bin/|[A-Z_]+=\S+ |nice -n \d+ )*(python3?|pip|toyseq-score|toyseq-models|gunicorn|curl|docker|podman|kubectl|"
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
    (
        r"^(\.venv/bin/)?toyseq-score .*(s3|gs)://",
        "not run: needs object storage; the Ray engine itself: tests/scoring/test_ray.py",
    ),
    (r"^(RAY_ADDRESS=\S+ )?(\.venv/bin/)?toyseq-score .*(--engine ray|/shared/)", "tests/scoring/test_ray.py"),
    (r"^(cat \S+ \| )?(\.venv/bin/)?toyseq-score ", RUN),
    (r"^(\.venv/bin/)?toyseq-models ", RUN),
    (r"^export TOYSEQ_URL=", RUN),  # with the toyseq-models lines after it
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
    (r"^\.venv/bin/python -m tools\.docs", "tests/test_doc_examples.py"),
    (r"^(\.venv/bin/)?python -m benchmarks( --quick| --smoke)?( |$)", "tests/benchmarks/test_benchmarks.py"),
    (r"^(\.venv/bin/)?python -m benchmarks\.scenarios\.regression", "tests/benchmarks/test_benchmarks.py"),
    (r"^(\.venv/bin/)?python -m benchmarks\.scenarios\.ab ", "tests/benchmarks/test_ab.py"),
    (
        r"^(nice -n \d+ )?(\.venv/bin/)?python -m benchmarks\.scenarios\.ray_scoring",
        "tests/benchmarks/test_benchmarks.py",
    ),
    (
        r"^(\.venv/bin/)?python -m benchmarks\.(peers|scenarios\.(cost|scoring))",
        "not run: a benchmark for publishable figures (minutes; peers installs other servers); "
        "tests/benchmarks/test_benchmarks.py runs the suite's smoke mode",
    ),
    (r"^\.venv/bin/python -m training evaluate [a-z-]+$", RUN),  # one task: seconds
    (r"^\.venv/bin/python -m training (train|evaluate)", "tests/training/test_models.py"),
    (r"^echo '\{\"data\": \[\{\"input\"", "tests/server/test_perf_analyzer.py (writes perf_analyzer's input data)"),
    (
        r"^LD_LIBRARY_PATH=\.tools/perf_analyzer/lib \.tools/perf_analyzer/bin/perf_analyzer ",
        "tests/server/test_perf_analyzer.py",
    ),
    (
        r"^(\.venv/bin/)?python -m benchmarks\.scenarios\.perf_sweep",
        "not run: a benchmark for publishable figures (minutes); tests/server/test_perf_analyzer.py runs perf_analyzer",
    ),
    (r"^(docker|podman) (build|run)", "tests/deploy/test_container.py"),
    (r"^kubectl apply -k deploy/k8s", "tests/deploy/test_kube_play.py"),
    (r"^kubectl (create secret|port-forward)", "not run: needs a Kubernetes cluster; tests/deploy/test_kube_play.py"),
    (r"^podman build --format docker -t REGISTRY", "tests/deploy/test_kube_play.py"),
    (r"^cd deploy/k8s && kustomize edit", "not run: needs standalone kustomize and a registry (docs/kubernetes.md)"),
    (r"^ray start", "not run: starts a Ray cluster; tests/scoring/test_ray.py starts a local one"),
    (r"^export TOYSEQ_", "not run: sets the server's environment for the commands after it"),
    (r"^cp (/tmp/)?new/", "tests/server/store/test_model_control.py (replaces a task's files, then loads them)"),
    (
        r"^gunicorn -c python:service\.server\.gunicorn_conf 'service:create_app\(\)' &$",
        "docs/api.md's command, run here",
    ),
    (
        r"^docker exec toyseq python -m service\.server\.cli",
        "not run: needs a Docker engine; the CLI: tests/server/store/test_model_control.py",
    ),
    (
        r"^(for pod in|kubectl exec|done$)",
        "not run: needs a Kubernetes cluster; the CLI: tests/server/store/test_model_control.py",
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
    """`python -m tools.docs --check`: models, budgets, the over-budget text, v2 answers, benchmark ratios."""
    from tools import docs

    changed = docs.differences(ROOT)
    assert not changed, "run `python -m tools.docs`; these pages differ from the code: " + ", ".join(
        str(p.relative_to(ROOT)) for p in changed
    )


def test_the_generator_notices_a_stale_figure(tmp_path):
    """A generated block or inline value edited by hand is put back, and --check would fail."""
    from tools import docs

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


def _venv(text: str) -> str:
    """A `.venv/bin/PROGRAM` command as run from the repository root: this test's virtualenv's PROGRAM."""
    return re.sub(r"(^|[\s|;&(])\.venv/bin/", lambda m: m.group(1) + VENV_BIN + "/", text)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """The service started by docs/api.md's own command, on a free port; stopped with SIGTERM."""
    yield from _documented_service(tmp_path_factory, grpc=True)


@pytest.fixture(scope="module")
def control_service(tmp_path_factory):
    """The same command with model control on and an API key, for the toyseq-models examples (load, unload)."""
    yield from _documented_service(
        tmp_path_factory, grpc=False, TOYSEQ_MODEL_CONTROL="explicit", TOYSEQ_API_KEY=CONTROL_KEY
    )


CONTROL_KEY = "doc-key"


def _documented_service(tmp_path_factory, grpc: bool, **settings: str):
    start = next(e.text for e in ALL if e.page == "docs/api.md" and e.text.startswith("gunicorn "))
    port = free_port()
    env = server_env(port, settings)
    if grpc:
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
    """rows.jsonl, rows.csv and rows.parquet that every documented task accepts (and no ./models)."""
    folder = tmp_path_factory.mktemp("doc-rows")
    rows = [[3, 1, 4], [5, 9, 2, 6]]
    (folder / "rows.jsonl").write_text('[3, 1, 4]\n{"inputs": [5, 9, 2, 6], "id": "a7"}\n')
    (folder / "rows.csv").write_text("3,1,4\n5,9,2,6\n")
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
        ["bash", "-c", "set -o pipefail; " + _venv(_here(example.text, service))],
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


MODEL_COMMANDS = [e for e in ALL if re.match(r"(\.venv/bin/)?toyseq-models |export TOYSEQ_URL=", e.text)]
_CONTROL_ENV: dict[str, str] = {}  # what `export` lines set, for the commands after them


@pytest.mark.slow
@pytest.mark.parametrize("example", MODEL_COMMANDS, ids=str)
def test_model_commands_run_as_written(control_service, tmp_path, example):
    """Each `toyseq-models` line, in page order, against a service with model control on: exit 0 and the
    service's JSON answer. TOYSEQ_URL points at the service, as a user's would (the default is port 8000)."""
    command = _venv(_here(example.text, control_service))
    if command.startswith("export "):
        name, _, value = command.removeprefix("export ").partition("=")
        _CONTROL_ENV[name] = value
        return
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TOYSEQ_")},
        "TOYSEQ_URL": control_service,
        "TOYSEQ_API_KEY": CONTROL_KEY,
        "PYTHONPATH": str(ROOT),
        **_CONTROL_ENV,
    }
    done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{command}: {done.stderr}"
    answer = json.loads(done.stdout)
    if " load " in f" {command} ":
        assert answer["load"] is True and answer["state"] == "READY", answer
    elif " unload " in f" {command} ":
        assert answer["unload"] is True, answer


EVALUATE = [e for e in ALL if e.text.startswith(".venv/bin/python -m training evaluate") and rule_for(e) == RUN]


@pytest.mark.slow
@pytest.mark.parametrize("example", EVALUATE, ids=str)
def test_evaluate_commands_run_as_written_and_report_as_they_go(example):
    """`training evaluate TASK` from the repository root: every gate met (exit 0), a line per category as it is
    measured, and a summary."""
    done = subprocess.run(["bash", "-c", _venv(example.text)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    task = example.text.split()[-1]
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"{task}: ") and "categories from" in lines[0]
    assert all(line.startswith("  ok   ") for line in lines[1:-1]) and len(lines) > 2
    assert lines[-1].startswith("evaluated 1 task (") and lines[-1].endswith("every gate met")


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
