"""How to start, call and measure each server in the peers benchmark: toyseq and the bare Flask floor under
the project's gunicorn config, MLServer, KServe's model server, BentoML and Granian (serving toyseq's own app) in
their own virtualenvs. All
bind 127.0.0.1 on a free port, run the same number of serving processes (`workers`) with onnxruntime on one
intra-op thread, and answer through service.core (benchmarks/peers/common.py). The "-grpc" servers are
toyseq's and KServe's gRPC servers (inference.GRPCInferenceService), called with the same ModelInferRequest
(the input in raw_input_contents, as tritonclient.grpc sends it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from benchmarks.harness.h2load import INFER_PATH
from benchmarks.harness.load import memory_mib
from benchmarks.harness.paths import ROOT
from benchmarks.harness.server import FLOOR_APP, TOYSEQ_APP, free_port, gunicorn_command, server_env

from . import envs

READY_TIMEOUT = 180.0  # a cold start on a loaded 2-core machine; a peer slower than this has failed


@dataclass
class Spec:
    """One server: its command, how to phrase a predict request and how to read the answer's outputs."""

    name: str
    command: Callable[[int, Path], list[str]]  # (port, scratch dir) -> argv
    path: str
    body: Callable[[list], bytes]
    outputs: Callable[[bytes], list] | None  # None: the floor, whose answer is not a prediction
    env: dict = field(default_factory=dict)
    setup: Callable[[int, Path], None] | None = None  # writes config files into the scratch dir
    # Called over gRPC: `path` is the method, `body` and `outputs` are protobuf messages, and the port the
    # command gets (and Running.port) is the gRPC port; the server's HTTP port, if any, is its own free one.
    grpc: bool = False


def toyseq_body(inputs: list) -> bytes:
    return orjson.dumps({"inputs": inputs})


def infer_message(task: str) -> Callable[[list], bytes]:
    """Rows -> a serialized ModelInferRequest with the input in raw_input_contents (tritonclient.grpc's way)."""
    from service.server.grpc.generated import grpc_service_pb2 as pb

    def message(inputs: list) -> bytes:
        array = np.array(inputs, dtype="<i8")
        request = pb.ModelInferRequest(model_name=task, raw_input_contents=[array.tobytes()])
        request.inputs.add(name="input", datatype="INT64", shape=list(array.shape))
        return request.SerializeToString()

    return message


def grpc_outputs(data: bytes) -> list:
    """A serialized ModelInferResponse's first output as rows, from raw_output_contents or typed contents."""
    from service.server.grpc.generated import grpc_service_pb2 as pb

    answer = pb.ModelInferResponse.FromString(data)
    out = answer.outputs[0]
    if answer.raw_output_contents:
        values = np.frombuffer(answer.raw_output_contents[0], dtype="<i8")
    else:
        values = np.array(out.contents.int64_contents, dtype=np.int64)
    return values.reshape(list(out.shape)).tolist()


def specs(task: str, models_dir: Path, workers: int, threads: int, toyseq_env: dict | None = None) -> dict[str, Spec]:
    model = models_dir / task
    peer_env = {
        "PYTHONPATH": str(ROOT),
        "TOYSEQ_PEER_MODEL": str(model),
        "TOYSEQ_THREADS": str(threads),
        "TOYSEQ_WORKERS": str(workers),
        "OMP_NUM_THREADS": str(threads),
        # No usage reports: the benchmark machine talks to nothing but itself.
        "BENTOML_DO_NOT_TRACK": "true",
        "DO_NOT_TRACK": "1",
    }

    def gunicorn(app: str) -> Callable[[int, Path], list[str]]:
        return lambda port, scratch: gunicorn_command(app)

    def mlserver_setup(port: int, scratch: Path) -> None:
        (scratch / "settings.json").write_text(
            json.dumps(
                {
                    "host": "127.0.0.1",
                    "http_port": port,
                    "grpc_port": free_port(),
                    "metrics_endpoint": None,
                    "parallel_workers": workers,
                    "debug": False,
                    "load_models_at_startup": True,
                }
            )
        )
        folder = scratch / task
        folder.mkdir(exist_ok=True)
        (folder / "model-settings.json").write_text(
            json.dumps(
                {
                    "name": task,
                    "implementation": "benchmarks.peers.mlserver_runtime.ToyseqRuntime",
                    "parameters": {"uri": str(model)},
                }
            )
        )

    def kserve_setup(port: int, scratch: Path) -> None:
        quiet = {"level": "WARNING", "handlers": ["default"], "propagate": False}
        (scratch / "logging.json").write_text(
            json.dumps(
                {
                    "version": 1,
                    "disable_existing_loggers": False,
                    "handlers": {"default": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}},
                    "loggers": {
                        name: quiet for name in ("kserve", "kserve.trace", "uvicorn", "uvicorn.access", "uvicorn.error")
                    },
                }
            )
        )

    def kserve_command(port: int, scratch: Path, grpc: bool = False) -> list[str]:
        # KServe serves gRPC (grpc.aio) from its main process only, whatever --workers says. With --workers > 1
        # that process also supervises the REST workers, pinging each every 0.5 s with a blocking 5 s poll on
        # the loop gRPC runs on (kserve/protocol/rest/multiprocess/server.py): on a busy machine calls then
        # stall for seconds (seen: 200 calls from 8 threads in 5.9 s, one of 5.0 s). So kserve-grpc runs one
        # process, its gRPC server's own shape, with no supervisor; `port` is then its gRPC port.
        return [
            str(envs.python("kserve")),
            "-m",
            "benchmarks.peers.kserve_runtime",
            "--task",
            task,
            "--http_port",
            str(free_port() if grpc else port),
            "--grpc_port",
            str(port if grpc else free_port()),
            "--workers",
            str(1 if grpc else workers),
            "--enable_grpc",
            "true" if grpc else "false",
            "--enable_latency_logging",
            "false",
            "--log_config_file",
            str(scratch / "logging.json"),
        ]

    own = {"TOYSEQ_WORKERS": str(workers), "TOYSEQ_THREADS": str(threads), "TOYSEQ_MODELS_DIR": str(models_dir)}
    codec_env = {**peer_env, "TOYSEQ_KSERVE_HANDLER": "codec"}
    return {
        "toyseq": Spec(
            "toyseq",
            gunicorn(TOYSEQ_APP),
            f"/tasks/{task}/predict",
            toyseq_body,
            lambda data: orjson.loads(data)["outputs"],
            {**own, **(toyseq_env or {})},
        ),
        "toyseq-grpc": Spec(
            "toyseq-grpc",
            gunicorn(TOYSEQ_APP),
            INFER_PATH,
            infer_message(task),
            grpc_outputs,
            {**own, **(toyseq_env or {})},
            grpc=True,
        ),
        "kserve-grpc": Spec(
            "kserve-grpc",
            lambda port, scratch: kserve_command(port, scratch, grpc=True),
            INFER_PATH,
            infer_message(task),
            grpc_outputs,
            codec_env,
            kserve_setup,
            grpc=True,
        ),
        "floor": Spec(
            "floor",
            gunicorn(FLOOR_APP),
            f"/tasks/{task}/predict",
            toyseq_body,
            lambda data: orjson.loads(data)["outputs"],
            own,
        ),
        "kserve": Spec(  # the V1 handler a KServe user writes (kserve_runtime.UserModel)
            "kserve",
            lambda port, scratch: kserve_command(port, scratch),
            f"/v1/models/{task}:predict",
            lambda inputs: orjson.dumps({"instances": inputs}),
            lambda data: orjson.loads(data)["predictions"],
            {**peer_env, "TOYSEQ_KSERVE_HANDLER": "user"},
            kserve_setup,
        ),
        "kserve-codec": Spec(  # the same V1 path answered through toyseq's codec (kserve_runtime.ToyseqModel)
            "kserve-codec",
            lambda port, scratch: kserve_command(port, scratch),
            f"/v1/models/{task}:predict",
            lambda inputs: orjson.dumps({"instances": inputs}),
            lambda data: orjson.loads(data)["predictions"],
            codec_env,
            kserve_setup,
        ),
        "kserve-v2": Spec(
            "kserve-v2",
            lambda port, scratch: kserve_command(port, scratch),
            f"/v2/models/{task}/infer",
            v2_body("input"),
            _v2_outputs,
            codec_env,
            kserve_setup,
        ),
        "granian": Spec(  # toyseq's own app (service:create_app) under Granian's WSGI server instead of its worker
            "granian",
            lambda port, scratch: [
                str(envs.python("granian")),
                "-m",
                "granian",
                "--interface",
                "wsgi",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--blocking-threads",
                "1",
                "--no-ws",
                "--factory",
                "service:create_app",
            ],
            f"/tasks/{task}/predict",
            toyseq_body,
            lambda data: orjson.loads(data)["outputs"],
            {
                "PYTHONPATH": str(ROOT),
                "OMP_NUM_THREADS": str(threads),
                **own,
                **(toyseq_env or {}),
            },
        ),
        "raw-floor": Spec(
            "raw-floor",
            lambda port, scratch: [
                sys.executable,
                "-m",
                "benchmarks.reference.raw_floor",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
                "--models-dir",
                str(models_dir),
            ],
            f"/tasks/{task}/predict",
            toyseq_body,
            lambda data: orjson.loads(data)["outputs"],
            {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)},
        ),
        "mlserver": Spec(
            "mlserver",
            lambda port, scratch: [str(envs.venv_dir("mlserver") / "bin" / "mlserver"), "start", str(scratch)],
            f"/v2/models/{task}/infer",
            v2_body("inputs"),
            _v2_outputs,
            peer_env,
            mlserver_setup,
        ),
        "bentoml": Spec(
            "bentoml",
            lambda port, scratch: [
                str(envs.venv_dir("bentoml") / "bin" / "bentoml"),
                "serve",
                "benchmarks.peers.bentoml_service:Toyseq",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            "/predict",
            toyseq_body,
            lambda data: orjson.loads(data)["outputs"],
            peer_env,
        ),
    }


def v2_body(input_name: str) -> Callable[[list], bytes]:
    """A V2 infer body holding the sequences as one INT64 [batch, length] tensor named `input_name`."""

    def body(inputs: list) -> bytes:
        flat = [v for row in inputs for v in row]
        tensor = {"name": input_name, "shape": [len(inputs), len(inputs[0])], "datatype": "INT64", "data": flat}
        return orjson.dumps({"inputs": [tensor]})

    return body


def _v2_outputs(data: bytes) -> list:
    out = orjson.loads(data)["outputs"][0]
    rows, width = out["shape"]
    flat = out["data"]
    return [flat[i * width : (i + 1) * width] for i in range(rows)]


class Running:
    """A started server: its process group, URL, and process-tree memory."""

    def __init__(self, spec: Spec, scratch: Path, log: Path):
        self.spec, self.port = spec, free_port()
        self.url = f"http://127.0.0.1:{self.port}{spec.path}"
        self.grpc_target = f"127.0.0.1:{self.port}"  # for a gRPC spec, its port is the gRPC port
        scratch.mkdir(parents=True, exist_ok=True)
        if spec.setup:
            spec.setup(self.port, scratch)
        if spec.name == "toyseq-grpc":
            env = {**server_env(free_port(), spec.env), "TOYSEQ_GRPC_BIND": self.grpc_target}
        elif spec.name in ("toyseq", "floor"):
            env = server_env(self.port, spec.env)
        else:
            env = {**{k: v for k, v in os.environ.items() if not k.startswith("TOYSEQ_")}, **spec.env}
        self.log = log
        self.started = time.perf_counter()
        with open(log, "ab") as out:
            # A session of its own, so the whole tree (workers, spawned inference processes) stops together.
            self.proc = subprocess.Popen(
                spec.command(self.port, scratch),
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def post(self, body: bytes, timeout: float = 10) -> tuple[int, bytes]:
        if self.spec.grpc:
            return self._call(body, timeout)
        request = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def _call(self, message: bytes, timeout: float) -> tuple[int, bytes]:
        """A unary gRPC call of the serialized message: (200, the answer's bytes) or (500, the status and details)."""
        import grpc

        with grpc.insecure_channel(self.grpc_target) as channel:
            try:
                return 200, channel.unary_unary(self.spec.path)(message, timeout=timeout)
            except grpc.RpcError as err:
                return 500, f"{err.code().name}: {err.details()}".encode()

    def wait_answer(self, body: bytes, check: Callable[[bytes], bool]) -> float:
        """Seconds from process start to the first right answer to `body`: the cold start."""
        deadline = self.started + READY_TIMEOUT
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.spec.name} exited with {self.proc.returncode}: {self.tail()}")
            try:
                status, data = self.post(body, timeout=5)
                if status == 200 and check(data):
                    return time.perf_counter() - self.started
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.spec.name} gave no right answer in {READY_TIMEOUT:.0f} s: {self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def pids(self) -> list[int]:
        found, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            try:
                for task in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{task}/children") as f:
                        todo += [int(p) for p in f.read().split()]
            except (FileNotFoundError, ProcessLookupError):
                continue
        return found

    def cpu_seconds(self) -> float:
        """User + system CPU of the server's processes so far (from /proc; clock ticks to seconds)."""
        ticks = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # a process gone meanwhile
                continue
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def memory(self) -> dict:
        """RSS summed over the process tree (pages shared after fork count once per process, as `ps` shows
        them) and PSS (shared pages split between their users): MiB."""
        return memory_mib(self.pids())

    def stop(self, timeout: float = 30) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # stragglers of the group (spawned workers)
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(5)


def python_in(name: str) -> str:
    return sys.executable if name in ("toyseq", "floor", "toyseq-grpc") else str(envs.python(name))
