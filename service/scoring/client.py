"""A small HTTP client for a running toyseq service (standard library only).

    from service.scoring.client import Client
    client = Client("http://127.0.0.1:8000", api_key=None)
    client.predict("echo-lag", [[5, 3, 8]])        # -> {"task": ..., "model": {...}, "outputs": [[5, 3]]}

Retries with exponential backoff (and jitter) on 503 and on connection errors; every other error
status raises RemoteError carrying the RFC 9457 problem body. One keep-alive connection per thread,
so a Client can be shared by a thread pool.
"""

from __future__ import annotations

import http.client
import random
import socket
import threading
import time
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

RETRY_STATUSES = frozenset({503})
# What a restarting or overloaded server looks like from here: refused, reset, or closed mid-answer.
CONNECTION_ERRORS = (
    ConnectionError,
    http.client.RemoteDisconnected,
    http.client.IncompleteRead,
    http.client.BadStatusLine,
    socket.timeout,
    TimeoutError,
)


class RemoteError(Exception):
    """A non-2xx answer: `status`, and the problem body (`problem["errors"]` lists bad places)."""

    def __init__(self, status: int, problem: dict):
        self.status = status
        self.problem = problem
        detail = problem.get("detail") or problem.get("title") or ""
        super().__init__(f"HTTP {status}: {detail}".rstrip(": ") if status else detail)

    @property
    def errors(self) -> list[dict]:
        errors = self.problem.get("errors")
        return errors if isinstance(errors, list) else []


class ServiceUnavailable(RemoteError):
    """Still 503 or unreachable after every retry."""


class Client:
    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        retries: int = 5,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
    ):
        parts = urlsplit(base_url if "://" in base_url else f"http://{base_url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._local = threading.local()

    # --- the API --------------------------------------------------------------------------------

    def predict(self, task: str, sequences: list, steps: int | None = None, top_k: int | None = None) -> dict:
        body: dict[str, Any] = {"inputs": sequences}
        if steps is not None:
            body["steps"] = steps
        if top_k is not None:
            body["top_k"] = top_k
        return self.request("POST", f"/tasks/{quote(task, safe='')}/predict", body)

    def tasks(self) -> dict:
        return self.request("GET", "/tasks")

    def task(self, name: str) -> dict:
        return self.request("GET", f"/tasks/{quote(name, safe='')}")

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """Send one request, retrying 503s and connection errors; return the decoded JSON answer."""
        payload = None if body is None else orjson.dumps(body)
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                status, headers, data = self._send(method, self._prefix + path, payload)
            except CONNECTION_ERRORS as err:
                self._drop_connection()
                if last:
                    raise ServiceUnavailable(0, {"detail": f"cannot reach {self.base_url}: {err}"}) from None
                self._sleep(attempt, None)
                continue
            if status in RETRY_STATUSES and not last:
                self._sleep(attempt, headers.get("Retry-After"))
                continue
            answer = _decode(data)
            if 200 <= status < 300:
                return answer
            problem = answer if isinstance(answer, dict) else {"detail": data[:200].decode(errors="replace")}
            raise (ServiceUnavailable if status in RETRY_STATUSES else RemoteError)(status, problem)
        raise AssertionError("unreachable")

    # --- plumbing -------------------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _send(self, method: str, path: str, payload: bytes | None) -> tuple[int, Any, bytes]:
        conn = self._connection()
        conn.request(method, path, body=payload, headers=self._headers)
        response = conn.getresponse()
        data = response.read()
        if response.will_close:
            self._drop_connection()
        return response.status, response.headers, data

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        delay = min(self.max_backoff, self.backoff * 2**attempt) * random.uniform(0.5, 1.0)
        if retry_after and retry_after.strip().isdigit():
            delay = max(delay, min(float(retry_after), self.max_backoff))
        time.sleep(delay)

    def close(self) -> None:
        self._drop_connection()


def _decode(data: bytes) -> Any:
    try:
        return orjson.loads(data) if data else None
    except orjson.JSONDecodeError:
        return None
