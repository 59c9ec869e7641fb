"""The check of a predict request body against a task and the limits: every problem listed, each located
by a JSON pointer, before any model work is done."""
from __future__ import annotations

from typing import Any

from ..core.codec import MAX_PROBLEMS, InputError, Problem
from ..core.predictor import Predictor, top_k_classes
from .errors import InvalidRequest, OverBudget
from .registry import Limits

REQUEST_FIELDS = ("inputs", "steps", "top_k")


def parse_predict(predictor: Predictor, body: Any, limits: Limits) -> tuple[list, int | None, int | None]:
    """Check a decoded predict body; return (checked arrays, steps, top_k) or raise InvalidRequest
    listing every problem, each located by a JSON pointer."""
    task = predictor.task
    first = None
    if type(body) is not dict:
        raise InvalidRequest("the body must be a JSON object like {\"inputs\": [[...], ...]}",
                             errors=[Problem("", f"expected an object, got {_kind(body)}")])
    if len(body) == 1:  # the usual request, {"inputs": [...]} alone: no options to check
        inputs = body.get("inputs")
        if type(inputs) is list and len(inputs) <= limits.max_batch:
            check_budget(predictor, inputs, None, limits, [])
            try:
                return predictor.codec.check(inputs), None, None
            except InputError as err:
                first = err  # listed below with the others, not checked twice
    problems = [Problem(f"/{_escape(key)}", f"unknown field; allowed: {', '.join(REQUEST_FIELDS)}")
                for key in body if key not in REQUEST_FIELDS]
    steps = top_k = None
    if "steps" in body:  # the messages below are built only when the field is there
        steps = _optional_int(body, "steps", limits.max_steps if predictor.rollout else 0,
                              f"steps is not supported for task {task} (it does not predict a next value)",
                              problems)
    if "top_k" in body:
        top_classes = top_k_classes(predictor)
        top_max = min(top_classes, limits.max_top_k) if limits.max_top_k else top_classes
        why_not = ("its output is a list" if predictor.manifest["output"]["kind"] == "echo"
                   else "its output is not a class")
        top_k = _optional_int(body, "top_k", top_max, f"top_k is not supported for task {task} ({why_not})",
                              problems)
    arrays = None
    inputs = body.get("inputs")
    if "inputs" not in body:
        problems.append(Problem("/inputs", "required field is missing"))
    elif type(inputs) is list and len(inputs) > limits.max_batch:
        problems.append(Problem("/inputs", f"{len(inputs)} sequences exceed the limit of {limits.max_batch} "
                                           "per request"))
    else:
        check_budget(predictor, inputs, steps, limits, problems)
        try:
            if first is not None:
                raise first
            arrays = predictor.codec.check(inputs)
        except InputError as err:
            problems.extend(err.problems)
            extra = err.total - len(err.problems)
            if extra:
                problems.append(Problem("/inputs", f"and {extra} more problems"))
            if err.stopped:
                problems.append(Problem("/inputs", f"checking stopped after {MAX_PROBLEMS} problems; "
                                                   "the sequences after that were not checked"))
    if steps and arrays is not None and steps * len(arrays) > limits.max_rollout_values:
        problems.append(Problem("/steps", f"{steps} steps x {len(arrays)} sequences exceed the limit of "
                                          f"{limits.max_rollout_values} rollout values per request"))
    if problems:
        shown = problems[:MAX_PROBLEMS]
        more = f" (and {len(problems) - len(shown)} more)" if len(problems) > len(shown) else ""
        raise InvalidRequest("; ".join(map(str, shown)) + more, errors=shown, total=len(problems))
    return arrays, steps, top_k


def check_budget(predictor: Predictor, inputs: Any, steps: int | None, limits: Limits, problems: list) -> None:
    """Raise OverBudget (422) when the request's estimated CPU time (service/core/cost.py) is over
    limits.max_request_seconds, with the problems found so far: before the values are checked or run."""
    if type(inputs) is not list or not inputs:
        return
    rows = len(inputs)
    values = sum([len(s) if type(s) is list else 1 for s in inputs])
    seconds = predictor.cost.seconds(rows, values, steps)
    budget = limits.max_request_seconds
    if seconds <= budget:
        return
    length = max(1, round(values / rows))
    fits = predictor.cost.largest(budget, length, steps)
    shape = f"{rows} sequences, {values} values" + (f", {steps} steps" if steps else "")
    if fits:
        advice = f"send at most {fits} sequences of {length} values per request"
    elif steps and predictor.cost.most_steps(budget, length):
        advice = f"ask for at most {predictor.cost.most_steps(budget, length)} steps per request"
    else:
        advice = "send shorter sequences"
    message = (f"this request would take about {seconds:.3g} s of CPU ({shape} on task {predictor.task}), over "
               f"the limit of {budget:g} s per request (TOYSEQ_MAX_REQUEST_SECONDS); {advice}")
    shown = [*problems[:MAX_PROBLEMS - 1], Problem("/inputs", message)]
    raise OverBudget("; ".join(map(str, shown)), errors=shown, total=len(problems) + 1,
                     extra={"estimated_seconds": round(seconds, 3), "limit_seconds": budget})


def _optional_int(body: dict, key: str, maximum: int, unsupported: str, problems: list) -> int | None:
    if key not in body:
        return None
    value = body[key]
    if not maximum:
        problems.append(Problem(f"/{key}", unsupported))
    elif type(value) is not int:  # bool is not accepted: type(True) is bool
        problems.append(Problem(f"/{key}", f"expected an integer 1..{maximum}, got {_kind(value)}"))
    elif not 1 <= value <= maximum:
        problems.append(Problem(f"/{key}", f"{value} is outside 1..{maximum}"))
    else:
        return value
    return None


def _kind(value: Any) -> str:
    names = {bool: "a boolean", type(None): "null", str: "a string", dict: "an object", list: "an array",
             float: "a non-integer number", int: "an integer"}
    return names.get(type(value), type(value).__name__)


def _escape(key: str) -> str:
    """A JSON pointer reference token (RFC 6901), shortened for the error message."""
    key = key if len(key) <= 40 else key[:37] + "..."
    return key.replace("~", "~0").replace("/", "~1")
