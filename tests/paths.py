from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = ROOT / "models"

# Gates a committed model is known to miss: recorded as passed: false in its manifest and stated in the README.
# Tests insist that these, and only these, are missed.
KNOWN_MISSES = {("arith-next", "exact_one_wrong")}


def known_misses(task: str) -> set[str]:
    return {metric for name, metric in KNOWN_MISSES if name == task}
