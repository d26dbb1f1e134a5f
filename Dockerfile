# syntax=docker/dockerfile:1
# leaderboard-api: one process, one uvicorn worker per container. Scale out with more
# identical replicas behind a load balancer or CDN (docs/deployment.md), not with workers.
#
#   docker build -t leaderboard-api .
#   docker build -t leaderboard-api:mydata --build-arg DATASET=hf://datasets/ORG/NAME@REV .
#   docker run --rm -p 8000:8000 leaderboard-api
#
# Configuration is environment only: every LEADERBOARD_* variable of
# leaderboard_api/settings.py (see README.md) plus the standard OTEL_* and HF_* ones.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# A fixed numeric uid so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /home/app --create-home \
        --shell /usr/sbin/nologin app \
    && python -m venv /opt/venv

WORKDIR /app

# Dependencies only: this layer is rebuilt when pyproject.toml changes, not when the code does.
# The list is read from pyproject.toml itself so there is one place that names them.
COPY pyproject.toml ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; open('/tmp/requirements.txt', 'w').write('\n'.join(deps) + '\n')" \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The code. The source stays at /app and is installed in editable mode, because the server
# serves the web page from static/ next to the package directory (/app/static).
COPY README.md ./
COPY leaderboard_api/ ./leaderboard_api/
COPY static/ ./static/
RUN pip install --no-deps -e . \
    && python -m compileall -q leaderboard_api \
    && mkdir -p /app/cache /app/hf-cache \
    && chown app:app /app/cache /app/hf-cache

# Settings that hold for every container of this image; the warm step below uses the same
# cache folders as the server will.
ENV LEADERBOARD_HOST=0.0.0.0 \
    LEADERBOARD_PORT=8000 \
    LEADERBOARD_CACHE_DIR=/app/cache \
    LEADERBOARD_HF_CACHE_DIR=/app/hf-cache \
    LEADERBOARD_LOG_FORMAT=json

# Optional: bake one dataset and its normalized disk cache into the image, so a new replica
# loads from local disk and is ready in seconds. DATASET is hf://datasets/ORG/NAME@REV (pin
# the revision) or "sample". A private dataset's token comes from a build secret:
#   docker build --secret id=hf_token,env=HF_TOKEN --build-arg DATASET=hf://... .
# To bake a local directory, build FROM this image, COPY it in and run the same warm command.
ARG DATASET=""
USER 10001:10001
RUN --mount=type=secret,id=hf_token,uid=10001 \
    if [ -n "$DATASET" ]; then \
        HF_TOKEN="$(cat /run/secrets/hf_token 2>/dev/null || true)" \
        leaderboard-api warm --data "$DATASET" --cache-dir "$LEADERBOARD_CACHE_DIR" \
            && rm -rf "$LEADERBOARD_HF_CACHE_DIR/.locks"; \
    fi

# A baked image reads its dataset from the image only (HF_HUB_OFFLINE=1): startup never
# waits on the hub. Roll out a new image for new data, or override both variables.
ENV LEADERBOARD_DATA=${DATASET} \
    HF_HUB_OFFLINE=${DATASET:+1}

EXPOSE 8000

# Liveness only (/health); readiness (/ready) belongs to the orchestrator's traffic decisions.
# python, not curl: the slim image has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('LEADERBOARD_PORT', '8000'), timeout=4)"]

# Exec form: the server is PID 1 and gets SIGTERM itself; it stops accepting, finishes
# in-flight requests and exits 0. `serve` runs exactly one worker.
STOPSIGNAL SIGTERM
ENTRYPOINT ["leaderboard-api"]
CMD ["serve"]
