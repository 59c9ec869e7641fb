"""The model store: the registry of loaded models (registry.py), loads and unloads (repository.py) and how
workers tell each other about them (control.py)."""
