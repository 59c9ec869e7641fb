"""The check of a predict request body against a task and the limits: every problem listed, each located
by a JSON pointer, before any model work is done."""

from __future__ import annotations

from typing import Any

import numpy as np

from service.core.capabilities import OPTIONS, Capabilities
from service.core.codec import MAX_PROBLEMS, Checked, InputError, Problem, json_type
from service.core.predictor import Predictor

from ..problems import InvalidRequest, OverBudget
from ..store.registry import Limits
from . import offload

REQUEST_FIELDS = ("inputs", "steps", "top_k")


def parse_predict(predictor: Predictor, body: Any, limits: Limits) -> tuple[Checked, int | None, int | None]:
    """Check a decoded predict body; return (checked arrays, steps, top_k) or raise InvalidRequest
    listing every problem, each located by a JSON pointer."""
    if type(body) is not dict:
        raise InvalidRequest(
            'the body must be a JSON object like {"inputs": [[...], ...]}',
            errors=[Problem("", f"expected an object, got {json_type(body)}")],
        )
    if len(body) == 1:  # the usual request, {"inputs": [...]} alone: no options to check
        inputs = body.get("inputs")
        if type(inputs) is list and len(inputs) <= limits.max_batch:
            check_budget(predictor, inputs, None, limits, [])
            try:
                return predictor.codec.check(inputs), None, None
            except InputError as err:
                raise _invalid(_listed([], err)) from None
    problems = [
        Problem(f"/{_escape(key)}", f"unknown field; allowed: {', '.join(REQUEST_FIELDS)}")
        for key in body
        if key not in REQUEST_FIELDS
    ]
    options = {option: body[option] for option in OPTIONS if option in body}
    return check_request(predictor, body.get("inputs", MISSING), options, limits, problems)


MISSING = object()  # "inputs" absent, as opposed to null


def check_request(
    predictor: Predictor, inputs: Any, options: dict[str, Any], limits: Limits, problems: list[Problem] | None = None
) -> tuple[Checked, int | None, int | None]:
    """The checks every front shares (native JSON, v2 JSON or binary tensors, gRPC): `inputs` as a list of
    sequences or a 2-D numpy array, `options` the raw steps/top_k given. Returns (checked arrays, steps,
    top_k) or raises InvalidRequest whose errors are Problems located by native JSON pointers (/inputs/i/j,
    /steps, /top_k), which each front words its own way."""
    problems = list(problems or [])
    values: dict[str, int | None] = dict.fromkeys(OPTIONS)
    if options:
        capabilities = limits.capabilities(predictor)
        for option, value in options.items():
            message = capabilities.problem(option, value)
            if message:
                problems.append(Problem(f"/{option}", message + _setting_behind(option, value, capabilities, limits)))
            else:
                values[option] = value
    steps, top_k = values["steps"], values["top_k"]
    arrays = None
    if inputs is MISSING:
        problems.append(Problem("/inputs", "required field is missing"))
    elif isinstance(inputs, (list, np.ndarray)) and len(inputs) > limits.max_batch:
        problems.append(
            Problem(
                "/inputs",
                f"{len(inputs)} sequences exceed the limit of {limits.max_batch} per request (TOYSEQ_MAX_BATCH)",
            )
        )
    else:
        check_budget(predictor, inputs, steps, limits, problems)
        try:
            arrays = predictor.codec.check(inputs)
        except InputError as err:
            problems = _listed(problems, err)
    if steps and arrays is not None and steps * len(arrays) > limits.max_rollout_values:
        problems.append(
            Problem(
                "/steps",
                f"{_count(steps, 'step')} x {_count(len(arrays), 'sequence')} exceed the limit of "
                f"{limits.max_rollout_values} rollout values per request (TOYSEQ_MAX_ROLLOUT_VALUES)",
            )
        )
    if problems:
        raise _invalid(problems)
    assert arrays is not None  # no problems: the inputs were checked
    return arrays, steps, top_k


def _listed(problems: list[Problem], err: InputError) -> list[Problem]:
    """The problems so far and the codec's; those it found but did not list are counted, not listed (a note
    among the listed ones would be cut when they are more than shown, and the count lost with it)."""
    problems = [*problems, *err.problems]
    extra = err.total - len(err.problems)
    if extra:
        problems.append(_Unlisted(extra))
    if err.stopped:
        problems.append(
            _Stopped(
                "/inputs",
                f"checking stopped after {MAX_PROBLEMS} problems; the sequences after that were not checked",
            )
        )
    return problems


class _Unlisted(Problem):
    """Stands for `count` problems the codec found but did not list: counted in the total, never shown."""

    def __init__(self, count: int):
        super().__init__("/inputs", f"and {count} more problems")
        object.__setattr__(self, "count", count)


class _Stopped(Problem):
    """The note that checking stopped: always among the problems shown, whatever else is cut."""


def _invalid(problems: list[Problem]) -> InvalidRequest:
    listed = [p for p in problems if not isinstance(p, _Unlisted)]
    total = len(listed) + sum(p.count for p in problems if isinstance(p, _Unlisted))  # type: ignore[attr-defined]
    notes = [p for p in listed if isinstance(p, _Stopped)]
    shown = [p for p in listed if not isinstance(p, _Stopped)][: MAX_PROBLEMS - len(notes)] + notes
    more = f" (and {total - len(shown)} more)" if total > len(shown) else ""
    return InvalidRequest("; ".join(map(str, shown)) + more, errors=shown, total=total)


def check_budget(predictor: Predictor, inputs: Any, steps: int | None, limits: Limits, problems: list) -> None:
    """Raise OverBudget (422) when the request's estimated CPU time (service/core/cost.py) is over
    limits.max_request_seconds, with the problems found so far: before the values are checked or run."""
    if isinstance(inputs, np.ndarray) and inputs.ndim == 2 and len(inputs):
        rows, values = len(inputs), inputs.size
    elif type(inputs) is list and inputs:
        rows = len(inputs)
        values = sum([len(s) if type(s) is list else 1 for s in inputs])
    else:
        return
    seconds = predictor.cost.seconds(rows, values, steps)
    budget = limits.max_request_seconds
    if seconds <= budget:
        # a heavy request leaves the worker's event loop for its pool: priced by the realistic estimate, not the
        # padded bound just used to refuse (a 1.5 ms request is not moved as if it cost 6 ms)
        offload.check(predictor.inline_cost.seconds(rows, values, steps))
        return
    length = max(1, round(values / rows))
    fits = predictor.cost.largest(budget, length, steps)
    shape = f"{_count(rows, 'sequence')}, {_count(values, 'value')}" + (f", {_count(steps, 'step')}" if steps else "")
    if fits:
        advice = f"send at most {fits} {'sequence' if fits == 1 else 'sequences'} of {length} values per request"
    elif steps and predictor.cost.most_steps(budget, length):
        advice = f"ask for at most {predictor.cost.most_steps(budget, length)} steps per request"
    else:
        advice = "send shorter sequences"
    message = (
        f"this request would take about {seconds:.3g} s of CPU ({shape} on task {predictor.task}), over "
        f"the limit of {budget:g} s per request (TOYSEQ_MAX_REQUEST_SECONDS); {advice}"
    )
    shown = [*problems[: MAX_PROBLEMS - 1], Problem("/inputs", message)]
    raise OverBudget(
        "; ".join(map(str, shown)),
        errors=shown,
        total=len(problems) + 1,
        extra={"estimated_seconds": round(seconds, 3), "limit_seconds": budget},
    )


def _setting_behind(option: str, value: Any, capabilities: Capabilities, limits: Limits) -> str:
    """Names the setting when an integer is over a configured limit (a task's class count is not a setting)."""
    if type(value) is not int or not 0 < capabilities.maximum(option) < value:
        return ""
    if option == "steps":
        return " (TOYSEQ_MAX_STEPS)"
    return " (TOYSEQ_MAX_TOP_K)" if limits.max_top_k and value > limits.max_top_k else ""


def _count(n: int, noun: str) -> str:
    """ "1 sequence", "2 sequences"."""
    return f"{n} {noun if n == 1 else noun + 's'}"


def _escape(key: str) -> str:
    """A JSON pointer reference token (RFC 6901), shortened for the error message."""
    key = key if len(key) <= 40 else key[:37] + "..."
    return key.replace("~", "~0").replace("/", "~1")
