# syntax=docker/dockerfile:1
# One image for every role: the command picks it (docker/entrypoint.sh).
#   api (default) | worker [dramatiq args, e.g. -Q consensus-engine-jobs-high] | migrate
#   | pubsub-setup | anything else, run as given (e.g. consensus-engine sweep)
# Build: docker build -t consensus-engine .

# ---- builder: a wheel of the project, installed with its pinned dependencies into /opt/venv
FROM python:3.11.14-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml README.md requirements.lock alembic.ini ./
COPY consensus_engine/ consensus_engine/
COPY brokers/ brokers/

# The wheel installs consensus_engine into site-packages, where
# consensus_engine/db/migrations.py looks for alembic.ini (parents[2] of the module: the
# site-packages directory itself). A copy there points Alembic at the scripts in /app/alembic;
# %(here)s/alembic would name the alembic library in site-packages instead.
RUN python -m venv /opt/venv \
    && python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && /opt/venv/bin/pip install --no-cache-dir -c requirements.lock /wheels/consensus_engine-*.whl \
    && purelib="$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
    && sed 's|^script_location = .*|script_location = /app/alembic|' alembic.ini > "${purelib}/alembic.ini" \
    && grep -qx 'script_location = /app/alembic' "${purelib}/alembic.ini"

# ---- runtime: the virtualenv, the migrations and the entry point; no build tools
FROM python:3.11.14-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="consensus-engine" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ENV=production \
    API_HOST=0.0.0.0

# A fixed, numeric, non-root user so Kubernetes' runAsNonRoot can verify it.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app

WORKDIR /app
COPY --from=builder /opt/venv /opt/venv
COPY alembic.ini /app/alembic.ini
COPY alembic/ /app/alembic/
COPY --chmod=0755 docker/entrypoint.sh /app/docker/entrypoint.sh

USER 10001:10001

# API_PORT, API_METRICS_PORT, WORKER_HTTP_PORT (/healthz, /readyz, /pubsub/push),
# WORKER_METRICS_PORT
EXPOSE 8000 9190 8080 9191

# No HEALTHCHECK: Kubernetes probes /health, /ready (API) and /healthz, /readyz (worker).
ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["api"]
