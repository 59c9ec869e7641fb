"""Strict mode's check before gunicorn forks: every model must load, or the service does not start.

The workers load the models after fork (onnxruntime sessions are not fork-safe), so a bad model used to be
found by each worker at once; gunicorn then halted from whichever worker died first, and a second death
during that halt ended in a traceback and a random exit status. Checking first, in a child process so that
the master never creates an onnxruntime session, gives one message and one documented exit status.

    python -m service.server.preflight      # exit 0: every model loads; 3: the message names the task
"""

from __future__ import annotations

import atexit
import os
import shutil
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
