"""What every request path shares: the API-key check (one decorator) and reading the body, within the body
limit, decompressing gzip or deflate (Content-Encoding) as it is read. Used by the native and the v2 routes.

A compressed body is held to TOYSEQ_MAX_BODY_BYTES twice: as sent, and as inflated. Inflating runs with
zlib's max_length, so a compression bomb is refused (413) once its output passes the limit: never inflated
in full, whatever its ratio.
"""

from __future__ import annotations

import functools
import json
import zlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import orjson
from flask import request
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

from ...problems import BadRequest, ServiceError, Unauthorized, UnsupportedMediaType
from ...protocol import auth
from ..errors import DRAIN_LIMIT, drain

BLOCK = 1 << 16  # bytes read (and inflated) at a time
# Content-Encoding values read, with zlib's window bits for each: 31 is a gzip wrapper; deflate is the zlib
# wrapper (RFC 9110: "deflate" is RFC 1950 data, what tritonclient and curl send), 15.
CODINGS = {"gzip": 31, "x-gzip": 31, "deflate": 15}
ACCEPTED_CODINGS = "gzip, deflate, identity"
View = TypeVar("View", bound=Callable[..., Any])
# The body as parsed inline, kept in the environ: a request the loop worker moves to its pool (protocol/offload.py)
# runs again with the same environ, and finds its body read and parsed there, never twice.
PARSED = "toyseq.parsed"


class BodyTooLarge(ServiceError):
    status, title, slug = 413, "Content Too Large", "body-too-large"


class BodyTooComplex(ServiceError):
    """More arrays and objects than a request can use: 400, like JSON nested past the parser's depth."""

    status, title, slug = 400, "Bad Request", "body-too-complex"


def api_key_required(api_key: str | None, on_refused: Callable[[], None] | None = None) -> Callable[[View], View]:
    """A decorator refusing (401) a request without the key, when one is set; a no-op otherwise. `on_refused`
    runs first (model control logs who was refused)."""
    secret = api_key.encode() if api_key else b""

    def decorate(view: View) -> View:
        if not secret:
            return view

        @functools.wraps(view)
        def guarded(*args, **kwargs):
            if not _authorized(secret):
                if on_refused is not None:
                    on_refused()
                raise Unauthorized(auth.MESSAGE, headers={"WWW-Authenticate": 'Bearer realm="toyseq"'})
            return view(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate


def _authorized(key: bytes) -> bool:
    environ = request.environ
    return auth.key_matches(key, environ.get("HTTP_AUTHORIZATION"), environ.get("HTTP_X_API_KEY"))


def read_body(environ: dict, max_body: int, max_batch: int | None = None) -> bytes:
    """The body, decompressed, at most `max_body` bytes as sent and as inflated (413 past either); 415 for a
    Content-Encoding other than gzip, deflate or identity; 400 for compressed data that does not inflate.
    With `max_batch`, the body is JSON that must hold no more arrays and objects than a request can
    (check_structure, 400), counted as it inflates: a compression bomb of arrays stops within ~40 KB."""
    wbits = _coding(environ.get("HTTP_CONTENT_ENCODING"))
    if wbits is None:
        data = b"".join(_blocks(environ, max_body))
        if max_batch is not None:
            check_structure(data, max_batch)
        return data
    coding = environ.get("HTTP_CONTENT_ENCODING", "").strip()
    return _inflate(_blocks(environ, max_body), wbits, max_body, coding, max_batch)


def _coding(header: str | None) -> int | None:
    """zlib's window bits for the body's Content-Encoding; None for identity (or none)."""
    if not header:
        return None
    codings = [c.strip().lower() for c in header.split(",") if c.strip().lower() not in ("", "identity")]
    if not codings:
        return None
    if len(codings) == 1 and codings[0] in CODINGS:
        return CODINGS[codings[0]]
    raise UnsupportedMediaType(
        f"Content-Encoding {header.strip()[:60]!r} is not supported; send the body as one of: {ACCEPTED_CODINGS}",
        headers={"Accept-Encoding": ACCEPTED_CODINGS},
    )


def _inflate(blocks: Iterator[bytes], wbits: int, max_body: int, coding: str, max_batch: int | None) -> bytes:
    inflater = zlib.decompressobj(wbits)
    out: list[bytes] = []
    size = containers = 0
    most = max_batch + STRUCTURE_SLACK if max_batch is not None else None
    try:
        for block in blocks:
            if inflater.eof:
                raise BadRequest(f"the {coding} body has bytes after its compressed data")
            data = block
            while data and not inflater.eof:
                # never more than the limit allows (+1 to see it passed): a bomb stops here
                chunk = inflater.decompress(data, min(BLOCK, max_body + 1 - size))  # checked a block at a time
                out.append(chunk)
                size += len(chunk)
                _within(size, max_body, coding)
                if most is not None:
                    containers += chunk.count(b"[") + chunk.count(b"{")
                    if containers > most:
                        _too_structured(f"at least {containers}", most, max_batch)  # type: ignore[arg-type]
                data = inflater.unconsumed_tail
        out.append(inflater.flush())
        _within(size + len(out[-1]), max_body, coding)
        if most is not None and containers + out[-1].count(b"[") + out[-1].count(b"{") > most:
            _too_structured(f"at least {containers}", most, max_batch)  # type: ignore[arg-type]
    except zlib.error as err:
        raise BadRequest(f"the body is not valid {coding} data: {err}") from None
    if not inflater.eof:
        raise BadRequest(f"the {coding} body ends before its compressed data does")
    if inflater.unused_data:
        raise BadRequest(f"the {coding} body has bytes after its compressed data")
    return b"".join(out)


def _within(size: int, max_body: int, coding: str) -> None:
    if size > max_body:
        drain(DRAIN_LIMIT)
        raise BodyTooLarge(f"the {coding} body inflates past the limit of {max_body} bytes (TOYSEQ_MAX_BODY_BYTES)")


def _blocks(environ: dict, max_body: int) -> Iterator[bytes]:
    """The body as sent, at most `max_body` bytes (413 past it). A plain Content-Length is read in one call (the
    server stops it there); a body without one (chunked) is read in blocks up to the limit, since werkzeug would
    silently cut it at MAX_CONTENT_LENGTH. gunicorn's errors for malformed chunking become 400 (errors.py)."""
    length = environ.get("CONTENT_LENGTH")
    stream = environ["wsgi.input"]
    if length:
        if not (length.isdigit() and length.isascii()):
            raise BadRequest(f"Content-Length {length[:40]!r} is not a number of bytes")
        size = int(length)
        if size > max_body:
            raise RequestEntityTooLarge()
        data = stream.read(size)
        if len(data) != size:
            raise ClientDisconnected()
        yield data
        return
    if not environ.get("wsgi.input_terminated"):
        return  # neither a length nor a terminated stream (chunked): HTTP says there is no body
    size = 0
    while True:
        block = stream.read(min(BLOCK, max_body + 1 - size))
        if not block:
            return
        size += len(block)
        if size > max_body:
            raise RequestEntityTooLarge()
        yield block


def check_structure(data: bytes, max_batch: int) -> None:
    """A large JSON body holding more arrays and objects than any request can (its sequences, at most
    TOYSEQ_MAX_BATCH, and a few more) is refused before it is parsed: parsing costs per array, not per byte
    (`[1],` x 1.95 million, 7.8 MB, took orjson ~1 s, all of it holding the GIL, so the loop and every other
    request waited), and a compressed body brings that much in 7.6 KB. Counting brackets costs ~1 ms per MB;
    a bracket inside a string counts too, so the bound is generous."""
    if len(data) <= STRUCTURE_CHECK_BYTES:
        return  # at most a few thousand arrays: parsed in a few milliseconds
    most = max_batch + STRUCTURE_SLACK
    found = data.count(b"[") + data.count(b"{")
    if found > most:
        _too_structured(str(found), most, max_batch)


def _too_structured(found: str, most: int, max_batch: int) -> None:
    raise BodyTooComplex(
        f"the body holds {found} JSON arrays and objects, more than a request can use: at most {most} "
        f"(TOYSEQ_MAX_BATCH={max_batch} sequences and their request)",
        extra={"limit": most},
    )


STRUCTURE_CHECK_BYTES = 64 * 1024
STRUCTURE_SLACK = 256  # the request's own arrays and objects beside its sequences (v2: tensors, parameters)


def read_json(environ: dict, max_body: int, max_batch: int | None = None) -> Any:
    """The body as JSON, or 415 (not declared JSON, not UTF-8, an unknown Content-Encoding) / 400 (malformed,
    NaN, too deeply nested, lone surrogates, malformed chunking or compressed data) / 413 (too big as sent or
    as inflated, with or without Content-Length)."""
    # The usual header, exactly "application/json", needs no parsing (request.mimetype parses options).
    content_type = environ.get("CONTENT_TYPE")
    if content_type != "application/json":
        mimetype = request.mimetype
        if not (mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))):
            raise UnsupportedMediaType(
                f"the body must be JSON (Content-Type: application/json), got {mimetype or 'no content type'!r}"[:200]
            )
        charset = request.mimetype_params.get("charset", "utf-8").strip().lower()
        if charset not in ("utf-8", "utf8"):
            raise UnsupportedMediaType(
                f"the body must be UTF-8 JSON (RFC 8259), got charset={charset!r}"[:200],
                extra={"charset": charset[:40]},
            )
    if PARSED in environ:  # moved to the pool after the inline call parsed it
        return environ[PARSED]
    data = read_body(environ, max_body, max_batch)
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError as err:
        parsed = _lenient(data, err)
    environ[PARSED] = parsed
    return parsed


def _lenient(data: bytes, err: Exception) -> Any:
    """orjson refuses NaN, Infinity and numbers beyond float range, which are well-formed enough to locate:
    read them with the standard parser (it turns them into floats) so validation answers 422 at their
    pointer. Anything else orjson refused, including nesting past its depth limit, stays a 400. Bodies that
    are not UTF-8 are refused first (the standard parser would guess UTF-16 or UTF-32 from bytes), and so are
    lone surrogate escapes ("\\ud800"), which no valid Unicode text holds and orjson cannot write back."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data[:4]:  # a BOM or a NUL among the first four
        raise UnsupportedMediaType("the body looks like UTF-16 or UTF-32; JSON on the wire is UTF-8 (RFC 8259)")
    if data[:3] == b"\xef\xbb\xbf":
        raise BadRequest("the body starts with a UTF-8 byte order mark; JSON on the wire has none (RFC 8259)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as bad:
        raise UnsupportedMediaType(
            f"the body is not UTF-8: byte {bad.start} is invalid; JSON on the wire is UTF-8 (RFC 8259)",
            extra={"position": bad.start},
        ) from None
    if "surrogate" in str(err):
        raise BadRequest(f"the body is not valid JSON: {err} (a lone \\uD800-\\uDFFF escape is not a character)")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise BadRequest(f"the body is not valid JSON: {err}") from None
