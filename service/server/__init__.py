"""The HTTP service: the app factory, its configuration, error rendering, routes, observability and the
gunicorn configuration. Models are loaded into a Registry in each worker."""
