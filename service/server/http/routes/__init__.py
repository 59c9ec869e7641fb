"""One blueprint per concern; each module's `blueprint(runtime)` closes over the worker's Runtime (service/server/runtime.py)."""
