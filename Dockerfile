# toyseq inference service: gunicorn + Flask + onnxruntime serving models/<task>/.
#   docker build -t toyseq .   (or: podman build --format docker -t toyseq .)
#   docker run --rm -p 8000:8000 toyseq
# Configuration comes from the TOYSEQ_* environment variables the README documents (-e TOYSEQ_WORKERS=4 ...).

# The service's run-time dependencies, locked: service/requirements.lock resolves pyproject.toml's base
# `dependencies` (never torch or the training/test extras); tests/deploy/test_container.py checks the two agree.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /app

# Dependencies before code, so that a change to service/ or models/ reuses this layer.
# The service user gets a home: gunicorn puts its control socket there, onnxruntime its telemetry id.
COPY service/requirements.lock /tmp/requirements.lock
RUN pip install --no-cache-dir --no-deps -r /tmp/requirements.lock \
    && rm /tmp/requirements.lock \
    && groupadd --gid 10001 toyseq \
    && useradd --uid 10001 --gid toyseq --create-home --home-dir /home/toyseq \
        --shell /usr/sbin/nologin toyseq

COPY service/ service/
COPY models/ models/
# Code and models stay root-owned and read-only for the service user, whatever the
# permissions were in the build context (training writes model folders 0700).
RUN chmod -R a+rX,go-w /app

USER 10001:10001

ENV TOYSEQ_BIND=0.0.0.0:8000 \
    TOYSEQ_MODELS_DIR=/app/models

# 8000: HTTP; 8001: the Open Inference Protocol over gRPC (TOYSEQ_GRPC_BIND), as Triton and KServe number them.
ENV TOYSEQ_GRPC_BIND=0.0.0.0:8001

EXPOSE 8000 8001

# The slim image has no curl. The port follows TOYSEQ_BIND so `-e TOYSEQ_BIND=...` keeps the check right;
# urlopen raises on a 503, so "not ready" (no task can serve) is unhealthy; a single broken task is not
# (it answers 503 on its own paths and /readyz names it; TOYSEQ_STRICT=1 refuses to start instead).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('TOYSEQ_BIND', '0.0.0.0:8000').rsplit(':', 1)[-1]; urllib.request.urlopen(f'http://127.0.0.1:{port}/readyz', timeout=4)"]

CMD ["gunicorn", "-c", "python:service.server.gunicorn_conf", "service:create_app()"]
