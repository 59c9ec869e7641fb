"""The loop worker: a gunicorn worker (worker.py) running an HTTP/1.1 server on an event loop (server.py,
connection.py). It knows WSGI, not Flask."""
