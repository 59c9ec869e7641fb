"""Checks before gunicorn forks: strict mode's (every model must load, or the service does not start) and
the gRPC port's (TOYSEQ_GRPC_BIND must be free).

The workers load the models after fork (onnxruntime sessions are not fork-safe), so a bad model used to be
found by each worker at once; gunicorn then halted from whichever worker died first, and a second death
during that halt ended in a traceback and a random exit status. Checking first, in a child process so that
the master never creates an onnxruntime session, gives one message and one documented exit status.

    python -m service.server.preflight      # exit 0: every model loads; 3: the message names the task
"""

from __future__ import annotations

import atexit
import errno
import os
import shutil
import socket
import subprocess
import sys

from .config import Config

EXIT_BAD_MODEL = 3  # gunicorn's own status for a worker that cannot boot, so both paths agree


def check_models(config: Config) -> None:
    """Exit 1 when TOYSEQ_MODELS_DIR is not a folder (a typo would otherwise serve nothing, never ready);
    exit EXIT_BAD_MODEL, with one line on stderr, when strict and some model cannot be served."""
    if not os.path.isdir(config.models_dir):
        print(f"Error: TOYSEQ_MODELS_DIR={config.models_dir} is not a folder", file=sys.stderr, flush=True)
        sys.exit(1)
    if not config.strict:
        return
    # The child reads the same TOYSEQ_* environment, so it sees the models the workers would.
    done = subprocess.run([sys.executable, "-m", __name__], capture_output=True, text=True)
    if done.returncode:
        # main() prints one line on stdout; anything else (a crash) ends its stderr with the exception's line
        said = done.stdout.strip().splitlines() or done.stderr.strip().splitlines()[-1:] or ["the check failed"]
        print(f"Error: {said[0]}", file=sys.stderr, flush=True)
        sys.exit(EXIT_BAD_MODEL)


def check_grpc_port(config: Config) -> None:
    """Exit 1 with one line when TOYSEQ_GRPC_BIND's port is taken, by anything: another program, or another
    toyseq server. The workers bind it with SO_REUSEPORT (so that they share it with each other), which would
    let them silently share it with any other SO_REUSEPORT listener too (another toyseq, whose gRPC calls would
    then be split between two unrelated servers). A bind here, in gunicorn's master before any worker exists,
    without SO_REUSEPORT, fails when anyone else listens on the port, whatever their options."""
    bind = config.grpc_bind
    target = _tcp_address(bind) if bind else None
    # Not again in a master whose own workers hold the port: a config file read again on SIGHUP (-c path.py is
    # executed at each reload), or a new master started by SIGUSR2 beside the old one (gunicorn sets GUNICORN_PID).
    if target is None or "GUNICORN_PID" in os.environ or os.environ.get(_CHECKED) == str(os.getpid()):
        return
    host, port = target
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        _grpc_refused(bind, f"the host {host!r} does not resolve ({err.strerror})")
        return
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # connections of an earlier run do not count
        try:
            probe.bind(address)
            probe.listen(1)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                _grpc_refused(bind, f"port {port} is already in use (by another program or another toyseq server)")
            else:
                _grpc_refused(bind, f"it cannot be bound: {err.strerror or err}")
    os.environ[_CHECKED] = str(os.getpid())


_CHECKED = "TOYSEQ_GRPC_PORT_CHECKED"  # the master that checked the port (workers inherit it, and run no config)


def _tcp_address(bind: str) -> tuple[str, int] | None:
    """(host, port) of a gRPC address "host:port" or "[v6]:port"; None for a form not probed (unix:..., port 0,
    grpc's own dns: or ipv4: prefixes), which gRPC itself checks as it binds."""
    if ":" not in bind or "/" in bind:
        return None
    host, _, port = bind.rpartition(":")
    if not port.isdigit() or int(port) == 0 or host.startswith(("unix", "dns", "ipv4", "ipv6")):
        return None
    return host.removeprefix("[").removesuffix("]"), int(port)


def _grpc_refused(bind: str, why: str) -> None:
    print(
        f"Error: cannot serve gRPC on TOYSEQ_GRPC_BIND={bind}: {why}; choose another address, or set "
        "TOYSEQ_GRPC_BIND= (empty) to turn gRPC off",
        file=sys.stderr,
        flush=True,
    )
    sys.exit(1)


def remove_at_exit(path: str) -> None:
    """Remove `path` when this process (gunicorn's master) exits, however it exits; forked workers inherit
    atexit handlers, so the pid is checked."""
    master = os.getpid()

    def remove() -> None:
        if os.getpid() == master:
            shutil.rmtree(path, ignore_errors=True)

    atexit.register(remove)


def main() -> int:
    import logging

    from service.core.predictor import SessionConfig

    from .store.registry import Registry, StartupError  # onnxruntime: only in this child process

    logging.disable(logging.CRITICAL)  # the one line below says it; the registry's own log would repeat it
    config = Config.load()
    try:
        Registry.load(config.models_dir, SessionConfig(intra_op_threads=1), strict=True)
    except StartupError as err:
        print(f"TOYSEQ_STRICT is on and {err}; not starting")
        return EXIT_BAD_MODEL
    return 0


if __name__ == "__main__":
    sys.exit(main())
