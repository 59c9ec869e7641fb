"""toyseq's serving half, in three parts:

- `service.core`: the manifest, the codec and the Predictor, shared with training (no Flask here);
- `service.server`: the HTTP app (Flask under gunicorn);
- `service.scoring`: batch scoring of files, locally or against a running service.

`create_app` is imported lazily so that `import service.core.codec` (used by training) does not pull in Flask.
"""


def create_app(config=None):
    from .server.http.app import create_app as factory

    return factory(config)
