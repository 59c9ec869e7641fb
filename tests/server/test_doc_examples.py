"""The example answers in docs/api.md and the README are what the committed models answer today."""

import re
import shlex

import orjson
import pytest

from tests.support.paths import ROOT

DOCS = ("README.md", "docs/api.md")
# a `$ curl ... /tasks/<name>/predict ... -d '<json>'` line, then the answer line (status lines skipped)
CURL = re.compile(r"^\$ (curl .*/tasks/[\w-]+/predict.*)$", re.M)


def examples():
    for doc in DOCS:
        text = (ROOT / doc).read_text()
        for match in CURL.finditer(text):
            args = shlex.split(match.group(1))
            path = re.search(r"/tasks/[\w-]+/predict", match.group(1)).group(0)
            body = args[args.index("-d") + 1]
            rest = text[match.end() :].lstrip("\n").split("\n")
            answer = next(line for line in rest if line.startswith("{"))
            yield pytest.param(path, body, answer, id=f"{doc}:{path.split('/')[2]}:{len(body)}")


@pytest.mark.parametrize(("path", "body", "answer"), list(examples()))
def test_documented_answer_is_the_real_one(client, path, body, answer):
    got = client.post(path, data=body, content_type="application/json").get_json()
    expected = orjson.loads(answer)
    if "…" in expected.get("model", {}).get("sha256", "") or expected.get("model", {}).get("sha256", "").endswith(
        "..."
    ):
        expected["model"] = got["model"]  # an abbreviated hash
    assert got == expected
