# selfheal-receiver: a slim, non-root image. Build: docker build -t selfheal-receiver:0.1.0 .

# -- build: dependencies in their own layer, then the source --------------------------------
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
# Only the project metadata first: this layer is rebuilt when dependencies change, not code.
COPY pyproject.toml README.md ./
RUN mkdir receiver && touch receiver/__init__.py \
    && pip install . \
    && pip uninstall --yes selfheal-receiver
COPY receiver ./receiver
RUN pip install --no-deps .

# -- runtime ---------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RECEIVER_STORE=/var/lib/selfheal/journal.db \
    RECEIVER_LOG_FORMAT=json
COPY --from=build /opt/venv /opt/venv
COPY config /etc/selfheal/config
# The journal's directory, writable by the receiver's user (a volume in Kubernetes).
RUN mkdir -p /var/lib/selfheal && chown 10001:10001 /var/lib/selfheal
# A numeric user: Kubernetes' runAsNonRoot can only verify a numeric one.
USER 10001:10001
WORKDIR /var/lib/selfheal
EXPOSE 8080
# No HEALTHCHECK: Kubernetes probes /healthz and /readyz.
ENTRYPOINT ["receiver", "serve"]
CMD ["--config", "/etc/selfheal/config"]
