"""What a request may ask of a task beyond its inputs: rollout `steps` and `top_k`, up to which limit,
and the words that refuse them. One object answers for the HTTP API (422 problems), the task listing,
the batch scorer and its command line, so they cannot disagree.

    caps = Capabilities.of(predictor, max_steps=1000)
    caps.problem("steps", 5000)      # -> "5000 is outside 1..1000"
    caps.problem("top_k", 3)         # -> "top_k is not supported for task ramp (its output is not a class)"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .codec import json_type
from .predictor import Predictor, top_k_classes

OPTIONS = ("steps", "top_k")


@dataclass(frozen=True)
class Capabilities:
    task: str
    max_steps: int  # 0: the task does not predict a next value, so it cannot roll out
    max_top_k: int  # 0: the task's output is not a single class
    output_kind: str  # the manifest's output kind: "value", "echo" or "next"

    @classmethod
    def of(cls, predictor: Predictor, max_steps: int, max_top_k: int = 0) -> Capabilities:
        """The task's capabilities under the configured limits (`max_top_k` 0: up to its class count)."""
        classes = top_k_classes(predictor)
        top = min(classes, max_top_k) if max_top_k else classes
        return cls(predictor.task, max_steps if predictor.rollout else 0, top, predictor.manifest["output"]["kind"])

    @classmethod
    def described(cls, info: dict[str, Any]) -> Capabilities:
        """From a running service's `GET /tasks/<name>` answer."""
        return cls(
            info["name"],
            info.get("max_steps") or 0,
            info.get("max_top_k") or 0,
            info.get("output", {}).get("kind", "value"),
        )

    def maximum(self, option: str) -> int:
        return self.max_steps if option == "steps" else self.max_top_k

    def unsupported(self, option: str) -> str:
        if option == "steps":
            return f"steps is not supported for task {self.task} (it does not predict a next value)"
        why = "its output is a list" if self.output_kind == "echo" else "its output is not a class"
        return f"top_k is not supported for task {self.task} ({why})"

    def problem(self, option: str, value: Any) -> str | None:
        """Why `value` cannot be given as `option` ("steps" or "top_k"), or None when it can."""
        maximum = self.maximum(option)
        if not maximum:
            return self.unsupported(option)
        if type(value) is not int:  # bool is not accepted: type(True) is bool
            return f"expected an integer 1..{maximum}, got {json_type(value)}"
        if not 1 <= value <= maximum:
            return f"{value} is outside 1..{maximum}"
        return None
