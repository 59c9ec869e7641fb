"""Triton's load generator, perf_analyzer, found or installed for the tests and benchmarks that run it.

The binary ships inside the `tritonclient` manylinux wheel (tritonclient-<v>.data/data/bin/perf_analyzer; pip does
not install it with the package), linked against Debian's libb64 (`libb64-0d`) and the CUDA runtime
(`libcudart.so.12`, from the `nvidia-cuda-runtime-cu12` wheel) though it uses no GPU here. `install()` takes both
wheels with `pip download` (no package is installed into any environment) and unpacks the two files into
.tools/perf_analyzer/ beside the project; .ci/run calls it after installing libb64-0d:

    python3 tests/support/perf_analyzer.py --install

`find()` returns the binary and the environment to run it with, or why it cannot run (tests skip with that
reason). TOYSEQ_PERF_ANALYZER points at another binary (its libraries then come from the system's paths).
Standard library only, so .ci/run can call it before any venv exists.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOME = ROOT / ".tools" / "perf_analyzer"
TRITONCLIENT = "tritonclient==2.47.0"  # the last release whose wheel ships perf_analyzer built for CPU-only hosts
CUDA_RUNTIME = "nvidia-cuda-runtime-cu12==12.9.79"
BINARY = "tritonclient-2.47.0.data/data/bin/perf_analyzer"
CUDART = "nvidia/cuda_runtime/lib/libcudart.so.12"


@dataclass(frozen=True)
class Found:
    binary: str | None
    env: dict[str, str]
    reason: str = ""  # why it cannot run, when binary is None


def find() -> Found:
    """perf_analyzer ready to run, or the reason it is not."""
    env = dict(os.environ)
    custom = os.environ.get("TOYSEQ_PERF_ANALYZER")
    binary = Path(custom) if custom else HOME / "bin" / "perf_analyzer"
    if not binary.exists():
        return Found(
            None,
            env,
            f"perf_analyzer not found at {binary}: run `python3 tests/support/perf_analyzer.py "
            "--install` (needs apt-get install libb64-0d), as .ci/run does",
        )
    if not custom:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(HOME / "lib"), env.get("LD_LIBRARY_PATH")]))
    try:
        probe = subprocess.run([str(binary), "--version"], env=env, capture_output=True, text=True, timeout=30)
    except OSError as err:
        return Found(None, env, f"perf_analyzer at {binary} cannot start: {err}")
    if "error while loading shared libraries" in probe.stderr:
        return Found(None, env, f"perf_analyzer cannot start: {probe.stderr.strip()} (libb64-0d installed?)")
    return Found(str(binary), env)


def install() -> Path:
    """Download the two wheels (pip download, nothing installed) and unpack the binary and libcudart.so.12."""
    (HOME / "bin").mkdir(parents=True, exist_ok=True)
    (HOME / "lib").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for requirement in (TRITONCLIENT, CUDA_RUNTIME):
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "-q",
                    "--no-deps",
                    "--only-binary=:all:",
                    "--platform",
                    "manylinux2014_x86_64",
                    "--platform",
                    "manylinux1_x86_64",
                    "-d",
                    tmp,
                    requirement,
                ],
                check=True,
            )
        _extract(Path(tmp), "tritonclient-*.whl", BINARY, HOME / "bin" / "perf_analyzer")
        _extract(Path(tmp), "nvidia_cuda_runtime_cu12-*.whl", CUDART, HOME / "lib" / "libcudart.so.12")
    (HOME / "bin" / "perf_analyzer").chmod(0o755)
    return HOME / "bin" / "perf_analyzer"


def _extract(folder: Path, pattern: str, member: str, target: Path) -> None:
    (wheel,) = folder.glob(pattern)
    with zipfile.ZipFile(wheel) as archive, archive.open(member) as source, open(target, "wb") as out:
        shutil.copyfileobj(source, out)


if __name__ == "__main__":
    if sys.argv[1:] == ["--install"]:
        print(f"perf_analyzer installed at {install()}")
    found = find()
    print(found.binary or found.reason)
    sys.exit(0 if found.binary else 1)
