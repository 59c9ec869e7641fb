"""One virtualenv per peer server, pinned, under a cache folder (~/.cache/toyseq-peers by default, or
TOYSEQ_PEERS_CACHE). A venv is reused when its marker file records the same requirement list, so a rerun
on the same machine skips the install and a change of pin reinstalls.

The peers never import toyseq's package as installed: their runtimes put the repository root on
PYTHONPATH and import `service.core` (codec, manifest, predictor), which needs only numpy, onnxruntime
and jsonschema. onnxruntime is pinned to the version toyseq itself runs so the model costs the same."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ORT = "onnxruntime==1.32.0"
SHARED = [ORT, "jsonschema>=4.20"]


def _service_dependencies() -> list[str]:
    """toyseq's own service dependencies (pyproject.toml), onnxruntime pinned like the other peers': Granian serves
    toyseq's Flask app itself, imported from the repository root on PYTHONPATH."""
    root = Path(__file__).resolve().parents[2]
    with open(root / "pyproject.toml", "rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    return sorted(ORT if d.startswith("onnxruntime") else d for d in deps)


# The peers' server packages, pinned. The versions are the newest releases when this benchmark was built.
PEERS: dict[str, list[str]] = {
    # MLServer 1.7.1's inference-pool workers call asyncio.get_event_loop() with no loop set, which uvloop
    # 0.22+ refuses: with the newest uvloop every parallel worker dies at start.
    "mlserver": ["mlserver==1.7.1", "uvloop==0.21.0", *SHARED],
    "kserve": ["kserve==0.21.0", *SHARED],
    "bentoml": ["bentoml==1.4.40", *SHARED],
    # A Rust HTTP server (hyper, tokio) running toyseq's own Flask app over WSGI: the best off-the-shelf front for
    # the same app, against which toyseq's hand-written loop worker must earn its code.
    "granian": ["granian==2.8.0", *_service_dependencies()],
}


def cache_root() -> Path:
    return Path(os.environ.get("TOYSEQ_PEERS_CACHE", Path.home() / ".cache" / "toyseq-peers"))


def venv_dir(name: str) -> Path:
    return cache_root() / name


def python(name: str) -> Path:
    return venv_dir(name) / "bin" / "python"


def ready(name: str) -> bool:
    marker = venv_dir(name) / "toyseq-requirements.json"
    return marker.exists() and json.loads(marker.read_text()) == PEERS[name]


def install(name: str, log=print) -> Path:
    """Create (or reuse) the peer's venv and return its python."""
    if ready(name):
        return python(name)
    root = venv_dir(name)
    root.parent.mkdir(parents=True, exist_ok=True)
    log(f"[peers] installing {name}: {' '.join(PEERS[name])} into {root} (a few minutes)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(root)], check=True)
    logfile = root / "install.log"
    with open(logfile, "w") as out:
        done = subprocess.run(
            [str(python(name)), "-m", "pip", "install", "--disable-pip-version-check", *PEERS[name]],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if done.returncode:
        raise RuntimeError(f"pip install for {name} failed; see {logfile}")
    (root / "toyseq-requirements.json").write_text(json.dumps(PEERS[name]))
    return python(name)


def install_all(names=None, log=print) -> dict[str, Path]:
    names = list(names or PEERS)
    # Downloads dominate, so the three installs run side by side.
    with ThreadPoolExecutor(len(names)) as pool:
        return dict(zip(names, pool.map(lambda n: install(n, log), names)))


if __name__ == "__main__":
    for name, py in install_all(sys.argv[1:] or None).items():
        print(name, py)
