"""The machine's floor: what serving the same model costs with no framework at all. One file, no Flask and
no gunicorn: httptools (llhttp) parses, a uvloop loop answers with one write, the same Predictor call as
benchmarks/reference/floor.py, N processes forked after binding one socket (each loads its own onnxruntime session).
Only for measuring: no limits, no errors beyond a 400, no graceful stop.

    python -m benchmarks.reference.raw_floor --bind 127.0.0.1:8000 --workers 2 --models-dir models
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
from pathlib import Path

import httptools
import numpy as np
import orjson

from service.core.predictor import Predictor, SessionConfig


class Handler(asyncio.Protocol):
    def __init__(self, predictors: dict):
        self.predictors = predictors
        self.parser = httptools.HttpRequestParser(self)
        self.url, self.body = b"", []

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            self.transport.close()

    def on_message_begin(self):
        self.url, self.body = b"", []

    def on_url(self, url):
        self.url += url

    def on_body(self, body):
        self.body.append(body)

    def on_message_complete(self):
        path = self.url.decode()
        if path == "/readyz":
            self.send(b'{"status":"ready"}')
            return
        predictor = self.predictors[path.split("/")[2]]
        dtype = np.int64 if predictor.manifest["input"]["dtype"] == "int" else np.float64
        inputs = orjson.loads(b"".join(self.body))["inputs"]
        self.send(orjson.dumps(predictor.predict([np.asarray(row, dtype=dtype) for row in inputs])))

    def send(self, body: bytes):
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        self.transport.write(head + body)


def serve(sock: socket.socket, models_dir: Path) -> None:
    import uvloop

    predictors = {
        folder.name: Predictor.load(folder, SessionConfig(intra_op_threads=1))
        for folder in sorted(models_dir.iterdir())
        if (folder / "manifest.json").exists()
    }
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(loop.create_server(lambda: Handler(predictors), sock=sock))
    loop.run_forever()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.reference.raw_floor", description=__doc__.split("\n")[0])
    p.add_argument("--bind", default="127.0.0.1:8000")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--models-dir", type=Path, default=Path("models"))
    args = p.parse_args()
    host, port = args.bind.rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port)))
    sock.listen(2048)
    children = []
    for _ in range(args.workers):
        pid = os.fork()
        if pid == 0:
            serve(sock, args.models_dir)
            os._exit(0)
        children.append(pid)
    try:
        for pid in children:
            os.waitpid(pid, 0)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
