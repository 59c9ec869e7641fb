"""Answers compressed for clients that ask (Accept-Encoding: gzip or deflate), as Triton's HTTP server does for
tritonclient's `response_compression_algorithm` and KServe's clients may: used by the inference answers (native
predict, v2 infer, V1 predict). Small answers are sent as they are: below MIN_BYTES compression saves less than
it costs (nginx's gzip_min_length plays the same part). Level 1, nginx's default gzip_comp_level: most of the
saving for a small share of the CPU of zlib's default 6.

"deflate" is the zlib format (RFC 9110 8.4.1.2), what tritonclient and curl decode. Every answer that could be
compressed says `Vary: Accept-Encoding`, so a cache never serves a compressed body to a client that did not ask.
"""

from __future__ import annotations

import gzip
import zlib

from flask import Response

MIN_BYTES = 1024
LEVEL = 1
CODINGS = ("gzip", "deflate")  # preferred first when a client accepts both equally


def negotiate(header: str | None) -> str | None:
    """The coding to answer with under this Accept-Encoding (RFC 9110 12.5.3: q=0 refuses one; `*` stands for
    any coding not named), or None for identity."""
    if not header:
        return None
    weights: dict[str, float] = {}
    for part in header.split(","):
        coding, _, params = part.partition(";")
        weights[coding.strip().lower()] = _quality(params)
    best, chosen = 0.0, None
    for coding in CODINGS:
        q = weights.get(coding, weights.get("*", 0.0))
        if q > best:
            best, chosen = q, coding
    return chosen


def compressed(response: Response, environ: dict) -> Response:
    """`response`, its body compressed when the client asked and it is at least MIN_BYTES long."""
    size = response.content_length  # set from the bytes the view built: no copy of the body to learn it
    if size is None or size < MIN_BYTES:
        return response
    response.vary.add("Accept-Encoding")
    coding = negotiate(environ.get("HTTP_ACCEPT_ENCODING"))
    if coding is None:
        return response
    body = response.get_data()
    response.set_data(gzip.compress(body, LEVEL, mtime=0) if coding == "gzip" else zlib.compress(body, LEVEL))
    response.headers["Content-Encoding"] = coding
    return response


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                return max(0.0, min(1.0, float(value)))
            except ValueError:
                return 0.0  # a weight that is not a number accepts nothing
    return 1.0
