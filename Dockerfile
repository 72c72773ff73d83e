# syntax=docker/dockerfile:1.7
# Images of tuneserve, one target each:
#   serve-cpu  CPU serving (extra `serve`: onnxruntime, gRPC; no torch)
#   serve-gpu  GPU serving (extra `gpu`: onnxruntime-gpu) on a CUDA/cuDNN runtime base
#   train      a server that can also run Train jobs (extras `serve` + `train`; torch's CUDA comes in its wheels)
# Build: docker build --target serve-cpu -t tuneserve:serve-cpu .
# The install commands are the README's (`uv sync --locked`, non-editable); tests/unit/test_deploy_files.py
# checks that they stay so.

# Bases pinned by exact tag; bump them together with uv.lock.
ARG PYTHON_IMAGE=python:3.12.12-slim-bookworm
# onnxruntime-gpu from PyPI is built against CUDA 13 and cuDNN 9: keep this base on the same majors.
ARG CUDA_IMAGE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# --- build stages: dependencies first (cached while only the sources change), then the project ---
FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_NO_EDITABLE=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
COPY pyproject.toml uv.lock ./

FROM build AS build-serve-cpu
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-project --extra serve
COPY . .
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --extra serve

FROM build AS build-train
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-project --extra serve --extra train
COPY . .
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --extra serve --extra train

# The CUDA base has no Python 3.11/3.12 of its own: uv installs a managed one at a fixed path, and the
# runtime stage copies it along with the venv that links to it.
FROM ${CUDA_IMAGE} AS build-serve-gpu
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_NO_EDITABLE=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_PYTHON_PREFERENCE=only-managed \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv python install 3.12 \
    && uv sync --locked --no-dev --no-install-project --python 3.12 --extra gpu
COPY . .
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --python 3.12 --extra gpu

# --- runtime stages: the venv only (the project is installed into it, not linked to /src) ---
FROM ${PYTHON_IMAGE} AS runtime
# The commit the image is built from, recorded in the lineage of every model it trains (null when not given):
#   docker build --build-arg TUNESERVE_GIT_COMMIT="$(git rev-parse HEAD)" ...
ARG TUNESERVE_GIT_COMMIT=""
ENV TUNESERVE_GIT_COMMIT=${TUNESERVE_GIT_COMMIT}
# A fixed UID so that Kubernetes' runAsNonRoot can verify it and fsGroup can own the model store.
RUN useradd --system --uid 10001 --gid 0 --home-dir /app --no-create-home tuneserve \
    && mkdir -p /models && chown 10001:0 /models
# Defaults match server/settings.py; the model store is a volume mounted at /models.
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TUNESERVE_MODEL_ROOT=/models \
    TUNESERVE_PORT=50051 \
    TUNESERVE_METRICS_PORT=9464
WORKDIR /app
EXPOSE 50051 8080 9464
# Overall health ("") is SERVING only once every model is loaded and warm, NOT_SERVING while draining.
# Plaintext only: with TLS on the gRPC port, override this check (Kubernetes uses its own probes).
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; ch = grpc.insecure_channel('localhost:' + os.environ.get('TUNESERVE_PORT', '50051')); r = g.HealthStub(ch).Check(h.HealthCheckRequest(service=''), timeout=4); sys.exit(r.status != h.HealthCheckResponse.SERVING)"]
USER 10001
ENTRYPOINT ["tuneserve"]
CMD ["serve"]

FROM runtime AS serve-cpu
COPY --from=build-serve-cpu --chown=10001:0 /app/.venv /app/.venv

FROM runtime AS train
COPY --from=build-train --chown=10001:0 /app/.venv /app/.venv

FROM ${CUDA_IMAGE} AS serve-gpu
ARG TUNESERVE_GIT_COMMIT=""
ENV TUNESERVE_GIT_COMMIT=${TUNESERVE_GIT_COMMIT}
RUN useradd --system --uid 10001 --gid 0 --home-dir /app --no-create-home tuneserve \
    && mkdir -p /models && chown 10001:0 /models
COPY --from=build-serve-gpu /opt/python /opt/python
COPY --from=build-serve-gpu --chown=10001:0 /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TUNESERVE_MODEL_ROOT=/models \
    TUNESERVE_PORT=50051 \
    TUNESERVE_METRICS_PORT=9464 \
    TUNESERVE_DEVICE=cuda
WORKDIR /app
EXPOSE 50051 8080 9464
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; ch = grpc.insecure_channel('localhost:' + os.environ.get('TUNESERVE_PORT', '50051')); r = g.HealthStub(ch).Check(h.HealthCheckRequest(service=''), timeout=4); sys.exit(r.status != h.HealthCheckResponse.SERVING)"]
USER 10001
ENTRYPOINT ["tuneserve"]
CMD ["serve"]
