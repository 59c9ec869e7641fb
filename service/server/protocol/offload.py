"""Where a request runs: the worker calls the app inline on its event loop, where a request costs no thread
hand-off, and the app moves any request whose priced cost (service/core/cost.py, known before any model
work) is over the inline budget to the worker's pool, so a heavy request never holds the loop and the cheap
requests queued behind it.

The worker sets the budget around an inline call; the budget check (parsing.check_budget) calls `check`.
`MoveToPool` is a BaseException so that Flask's error handlers let it through untouched, like SystemExit;
the app's middleware lets it pass uncounted, and the worker runs the same request again on the pool, where
no budget is set. Under any other server (the sync worker, Flask's test client) nothing is ever moved.
"""

from __future__ import annotations

from contextvars import ContextVar

_budget: ContextVar[float | None] = ContextVar("toyseq_inline_budget", default=None)


class MoveToPool(BaseException):  # noqa: N818 - a signal to the worker, not an error
    """Raised inside an inline call: run this request again on the pool."""


def check(seconds: float) -> None:
    """Called with a request's estimated CPU seconds, before its work starts."""
    budget = _budget.get()
    if budget is not None and seconds > budget:
        raise MoveToPool()


def off_the_loop() -> None:
    """Called by a view that may wait (a model load waits for every worker): never on the event loop."""
    if _budget.get() is not None:
        raise MoveToPool()


def set_budget(seconds: float | None):
    return _budget.set(seconds)


def reset(token) -> None:
    _budget.reset(token)
