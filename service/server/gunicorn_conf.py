"""gunicorn settings from the same TOYSEQ_ environment variables as the app.

    gunicorn -c python:service.server.gunicorn_conf 'service:create_app()'

No preload_app: each worker builds the app, and so its onnxruntime sessions, after fork. Access lines are
written by the app (JSON, with request id, task, status and duration), so gunicorn's own access log is off.
"""

import os
import shutil
import tempfile

from service.server import preflight
from service.server.config import WORKER_CLASSES, Config

_config = Config.load()  # a bad setting: gunicorn prints "Error: <what is accepted>" and exits 1
preflight.check_models(_config)  # TOYSEQ_STRICT and a bad model: one line, exit 3, before any fork
preflight.check_grpc_port(_config)  # TOYSEQ_GRPC_BIND taken, by anything (another toyseq too): one line, exit 1

bind = _config.bind
workers = _config.workers
worker_class = WORKER_CLASSES[_config.worker_class]
# gunicorn turns a sync worker with threads > 1 into gthread; the loop worker runs its own pool.
threads = 1
worker_connections = _config.worker_connections
reuse_port = _config.reuse_port
# The loop worker reads the same settings itself (loop/worker.py, Settings.of).
timeout = _config.timeout
graceful_timeout = _config.graceful_timeout
keepalive = _config.keepalive
limit_request_line = _config.limit_request_line
limit_request_fields = _config.limit_request_fields
loglevel = _config.log_level
accesslog = None
logger_class = "service.server.observability.gunicorn_log.JsonLogger"
preload_app = False

# prometheus_client reads this when first imported, which happens in the workers (after this file runs).
_own_metrics_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _own_metrics_dir:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="toyseq-metrics-")
    preflight.remove_at_exit(os.environ["PROMETHEUS_MULTIPROC_DIR"])  # also when gunicorn halts, not only on_exit
os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

# Where the workers tell each other about model loads (service/server/store/control.py); read by each worker's Config.
_own_control_dir = not os.environ.get("TOYSEQ_CONTROL_DIR")
if _own_control_dir:
    os.environ["TOYSEQ_CONTROL_DIR"] = tempfile.mkdtemp(prefix="toyseq-control-")


def on_starting(server):
    # Files left by an earlier run would be summed into this one's counters.
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))
    # Loads and unloads of an earlier run are not this one's: workers start from the models folder.
    from service.server.store.control import Channel

    Channel(os.environ["TOYSEQ_CONTROL_DIR"]).clear()


def post_worker_init(worker):
    # Each worker serves gRPC beside its HTTP, on its app's Runtime, once the app (and so its models) is loaded.
    if _config.grpc_bind:
        from service.server.grpc import lifecycle
        from service.server.http.app import runtime_of

        try:
            runtime = runtime_of(worker.wsgi)
        except RuntimeError:
            raise RuntimeError("TOYSEQ_GRPC_BIND needs the toyseq app (service:create_app()) to serve gRPC") from None
        from service.server.loop.worker import LoopWorker

        lifecycle.start(runtime, _config, on_loop=isinstance(worker, LoopWorker))


def worker_exit(server, worker):
    # Runs in the worker as it exits: gRPC calls in flight finish (within the graceful timeout), then the
    # access lines and metric counts it still holds are written (atexit does too; this runs first, while
    # gunicorn's own logging is still up).
    from service.server.grpc import lifecycle
    from service.server.observability import flushing

    lifecycle.stop(_config.graceful_timeout)
    flushing.flush_all()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
    from service.server.store.control import Channel

    Channel(os.environ["TOYSEQ_CONTROL_DIR"]).forget(worker.pid)  # loads no longer wait for it


def on_exit(server):
    if _own_metrics_dir:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
    if _own_control_dir:
        shutil.rmtree(os.environ["TOYSEQ_CONTROL_DIR"], ignore_errors=True)


# Last, so that it wraps the sync worker when that is chosen: gunicorn's own error answers (malformed HTTP,
# oversize request line or headers, worker timeout) become problem+json; see service/server/sync_worker.py.
# The loop worker answers its own (service/server/loop/connection.py).
from service.server.sync_worker import problem_worker  # noqa: E402

worker_class = problem_worker(worker_class)
