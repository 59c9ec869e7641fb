"""One blueprint per concern; each module's `blueprint(state)` closes over the worker's State."""
