# syntax=docker/dockerfile:1
# One image for every role: the command picks it (docker/entrypoint.sh).
#   api (default) | worker [dramatiq args, e.g. -Q consensus-engine-jobs-high] | migrate
#   | pubsub-setup | anything else, run as given (e.g. consensus-engine sweep)
# Build: docker build -t consensus-engine .

# ---- web: the web app built from package-lock.json (npm ci), into the package's api/static
FROM node:20.20.2-bookworm-slim AS web

WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

# ---- builder: the project and its locked runtime dependencies (uv.lock, without the dev
# extra), installed into /opt/venv. The migrations travel inside the package.
FROM python:3.11.14-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1

WORKDIR /src
COPY pyproject.toml uv.lock README.md LICENSE ./
COPY consensus_engine/ consensus_engine/
COPY --from=web /src/consensus_engine/api/static/ consensus_engine/api/static/
COPY brokers/ brokers/

# --frozen: install exactly what uv.lock says (hashes checked), never re-resolve;
# --no-editable: the venv holds a copy of the project, not a link back to /src;
# UV_COMPILE_BYTECODE: compiled once here, since the image never writes bytecode and every
# process would compile what it imports at each start.
RUN pip install --no-cache-dir uv==0.13.10 \
    && uv sync --frozen --no-editable --python /usr/local/bin/python3.11

# ---- runtime: the virtualenv (the package, its migrations included) and the entry point;
# no build tools, no uv
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
COPY --chmod=0755 docker/entrypoint.sh /app/docker/entrypoint.sh

USER 10001:10001

# API_PORT, API_METRICS_PORT, WORKER_HTTP_PORT (/healthz, /readyz, /pubsub/push),
# WORKER_METRICS_PORT
EXPOSE 8000 9190 8080 9191

# No HEALTHCHECK: Kubernetes probes /health, /ready (API) and /healthz, /readyz (worker).
ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["api"]
