"""One-off analyses of trained models (not part of training, evaluation or export)."""
