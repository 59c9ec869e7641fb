"""Deferred writes: per-request work that would cost a system call (an access line) or an mmap write under a
lock (Prometheus multiprocess values) is kept in memory and written by `flush` callbacks, which run

- every INTERVAL seconds on one daemon thread per process (started lazily, so after gunicorn's fork),
- when the process exits (atexit; gunicorn_conf's worker_exit hook calls `flush_all` too),
- and whenever their owner needs them current (a /metrics scrape, another log line).

So nothing is lost on a normal or graceful exit, and a worker killed outright (SIGKILL) loses at most the
last INTERVAL seconds of access lines and counts, much as nginx's `access_log ... buffer= flush=` does.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections.abc import Callable

INTERVAL = 0.05  # seconds

_callbacks: list[Callable[[], Callable[[], None] | None]] = []  # weak references to flush methods
_lock = threading.Lock()
_thread: threading.Thread | None = None
_thread_pid = 0
_local = threading.local()


def register(flush: Callable[[], None]) -> None:
    """Run `flush` periodically and at exit, for as long as its object lives (bound methods are held weakly)."""
    ref = weakref.WeakMethod(flush) if hasattr(flush, "__self__") else (lambda f=flush: f)
    with _lock:
        _callbacks.append(ref)
    _ensure_thread()


def flush_all() -> None:
    if getattr(_local, "busy", False):  # a flush that logs (its own failure) must not flush again
        return
    _local.busy = True
    try:
        _flush_all()
    finally:
        _local.busy = False


def _flush_all() -> None:
    with _lock:
        refs = list(_callbacks)
    dead = []
    for ref in refs:
        flush = ref()
        if flush is None:
            dead.append(ref)
            continue
        try:
            flush()
        except Exception:  # a failed flush must not stop the others, nor the thread; it retries next time
            logging.getLogger("toyseq.flush").exception("flush failed")
    if dead:
        with _lock:
            for ref in dead:
                if ref in _callbacks:
                    _callbacks.remove(ref)


def _ensure_thread() -> None:
    global _thread, _thread_pid
    with _lock:
        if _thread is not None and _thread_pid == os.getpid() and _thread.is_alive():
            return
        _thread_pid = os.getpid()
        _thread = threading.Thread(target=_loop, name="toyseq-flush", daemon=True)
        _thread.start()


def _loop() -> None:
    stop = threading.Event()  # never set: the thread is a daemon and ends with the process
    while not stop.wait(INTERVAL):
        flush_all()


def _after_fork() -> None:
    """The thread does not survive fork: a child that inherited callbacks gets its own."""
    global _thread
    _thread = None
    if _callbacks:
        _ensure_thread()


atexit.register(flush_all)
os.register_at_fork(after_in_child=_after_fork)
