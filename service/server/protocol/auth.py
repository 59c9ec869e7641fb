"""The API key check shared by every transport (REST predict and v2 infer, gRPC ModelInfer): the key comes as
`Authorization: Bearer <key>` or as `X-API-Key`, compared in constant time."""

from __future__ import annotations

import hmac

MESSAGE = "a valid API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key'"


def key_matches(key: bytes, authorization: str | None, x_api_key: str | None) -> bool:
    header = authorization or ""
    given = header[7:].strip() if header[:7].lower() == "bearer " else (x_api_key or "")
    return hmac.compare_digest(given.encode("utf-8", "replace"), key)
