"""Where the repository and its committed models are, and which of those models can be served."""

from pathlib import Path

from service.core import manifest as manifest_mod

ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = ROOT / "models"


def servable_tasks(models_dir: Path = MODELS_DIR) -> list[str]:
    """The committed tasks whose model passes its manifest checks (training may still be adding some)."""
    names = []
    for folder in manifest_mod.discover(models_dir):
        try:
            manifest_mod.load(folder)
        except manifest_mod.ManifestError:
            continue
        names.append(folder.name)
    return names


TASKS = servable_tasks()
