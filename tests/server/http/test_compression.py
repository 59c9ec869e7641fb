"""Answers compressed when the client asks (Accept-Encoding), on the native, v2 and V1 inference paths: gzip or
deflate (zlib) as negotiated, identity when refused or not asked, small answers as they are; decompressed they
equal the plain answer. tritonclient's response_compression_algorithm against real gunicorn reads them.

    .venv/bin/python -m pytest tests/server/http/test_compression.py
"""

from __future__ import annotations

import gzip
import zlib

import numpy as np
import pytest

from benchmarks.harness.server import Server
from service.server.http.compression import MIN_BYTES, negotiate

ROWS = [[v % 100 for v in range(k, k + 300)] for k in range(4)]  # an echo answer of about 4 KB
DECODE = {"gzip": gzip.decompress, "deflate": zlib.decompress}


def calls(client):
    v2 = {"inputs": [{"name": "input", "datatype": "INT64", "shape": [4, 300], "data": sum(ROWS, [])}]}
    return {
        "native": lambda h: client.post("/tasks/echo/predict", json={"inputs": ROWS}, headers=h),
        "v2": lambda h: client.post("/v2/models/echo/infer", json=v2, headers=h),
        "v1": lambda h: client.post("/v1/models/echo:predict", json={"instances": ROWS}, headers=h),
    }


@pytest.mark.parametrize("path", ["native", "v2", "v1"])
@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_answers_are_compressed_when_asked(client, path, coding):
    call = calls(client)[path]
    plain = call({})
    assert plain.status_code == 200 and "Content-Encoding" not in plain.headers and len(plain.data) > MIN_BYTES
    assert plain.headers["Vary"] == "Accept-Encoding"
    packed = call({"Accept-Encoding": coding})
    assert packed.headers["Content-Encoding"] == coding and packed.headers["Vary"] == "Accept-Encoding"
    assert len(packed.data) < len(plain.data) / 4
    assert DECODE[coding](packed.data) == plain.data


def test_small_answers_and_refused_codings_stay_identity(client):
    small = client.post("/tasks/echo/predict", json={"inputs": [[1, 2]]}, headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in small.headers and small.get_json()["outputs"] == [[1, 2]]
    native = calls(client)["native"]
    assert "Content-Encoding" not in native({"Accept-Encoding": "gzip;q=0, deflate;q=0"}).headers
    assert "Content-Encoding" not in native({"Accept-Encoding": "br, zstd"}).headers
    assert native({"Accept-Encoding": "*"}).headers["Content-Encoding"] == "gzip"


@pytest.mark.parametrize(
    "header, chosen",
    [
        (None, None),
        ("", None),
        ("gzip", "gzip"),
        ("deflate", "deflate"),
        ("gzip, deflate", "gzip"),
        ("deflate;q=1, gzip;q=0.5", "deflate"),
        ("GZIP; Q=0.2", "gzip"),
        ("gzip;q=0", None),
        ("*;q=0.3, gzip;q=0", "deflate"),
        ("identity", None),
        ("gzip;q=nope", None),
    ],
)
def test_accept_encoding_is_negotiated_as_rfc_9110_says(header, chosen):
    assert negotiate(header) == chosen


@pytest.mark.slow
@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_tritonclient_response_compression(tmp_path, coding):
    httpclient = pytest.importorskip("tritonclient.http", reason="pip install -e '.[test]' (tritonclient[http])")
    with Server(tmp_path / "gunicorn.log") as server:
        client = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
        rows = np.array(ROWS, dtype=np.int64)
        for binary in (False, True):
            tensor = httpclient.InferInput("input", list(rows.shape), "INT64")
            tensor.set_data_from_numpy(rows, binary_data=binary)
            wanted = [httpclient.InferRequestedOutput("output", binary_data=binary)]
            result = client.infer("echo", [tensor], outputs=wanted, response_compression_algorithm=coding)
            assert result.as_numpy("output").tolist() == ROWS
        client.close()
