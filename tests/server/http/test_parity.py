"""Parity: what the service answers over HTTP equals what training's evaluation computes through the
Predictor, on fresh held-out data from training's own generators (training is imported by tests only)."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from benchmarks.harness.paths import TASKS
from service.core.predictor import Predictor
from training.catalog import TASKS as CATALOG
from training.evaluation import evaluate, future, heldout

N = 1000
SEED = 4242  # neither the manifests' evaluation seed nor a training stream


class ServiceAnswers:
    """A Predictor look-alike that asks the HTTP service, so training.evaluation can measure the service."""

    def __init__(self, client, task: str):
        self.client, self.task = client, task

    PER_REQUEST = 100  # sequences: within the per-request cost budget (TOYSEQ_MAX_REQUEST_SECONDS) for every task

    def predict(self, sequences, steps=None, top_k=None):
        outputs = []
        for start in range(0, len(sequences), self.PER_REQUEST):
            body = {"inputs": [np.asarray(s).tolist() for s in sequences[start : start + self.PER_REQUEST]]}
            if steps:
                body["steps"] = steps
            r = self.client.post(
                f"/tasks/{self.task}/predict", data=orjson.dumps(body), content_type="application/json"
            )
            assert r.status_code == 200, r.get_data(as_text=True)[:500]
            outputs.extend(r.get_json()["outputs"])
        return {"outputs": outputs}


@pytest.mark.parametrize("task", [t for t in TASKS if t in CATALOG])
def test_service_answers_equal_the_predictor_and_the_evaluation(client, models_copy, task):
    predictor = Predictor.load(models_copy / task)
    service = ServiceAnswers(client, task)
    rng = np.random.default_rng(SEED)
    xs, _ = heldout(CATALOG[task], rng, N)
    assert service.predict(xs)["outputs"] == predictor.predict(xs)["outputs"]
    if predictor.rollout:
        windows, _ = future(CATALOG[task], rng, 200, 10)
        assert service.predict(windows, steps=10)["outputs"] == predictor.predict(windows, steps=10)["outputs"]
    # the exhaustive categories (a million sum-first-two inputs) go through the Predictor in test_models
    suite = tuple(c for c in CATALOG[task].suite if c.cases not in ("every_input", "first_then_repeated"))
    measured = evaluate(CATALOG[task], service, eval_seed=SEED, n=N, suite=suite)
    assert measured == evaluate(CATALOG[task], predictor, eval_seed=SEED, n=N, suite=suite)
    assert all(g["passed"] for g in measured), measured
