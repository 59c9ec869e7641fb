"""toyseq's HTTP service. `create_app` is imported lazily so that `import service.codec` (used by
training) does not pull in Flask."""


def create_app(config=None):
    from .app import create_app as factory

    return factory(config)
