# selfheal-receiver: a slim, non-root image. Build: docker build -t selfheal-receiver:0.1.0 .
#
# Reproducible: the base image is pinned by digest (bump both FROM lines together, e.g. with
# `docker buildx imagetools inspect python:3.11-slim-bookworm`, or let Renovate do it), and
# every Python package by version and hash in requirements.lock (regenerate it with
# `pip-compile --generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links
#  --output-file requirements.lock pyproject.toml` after changing dependencies).

# -- build: dependencies in their own layer, then the source --------------------------------
FROM python:3.11.10-slim-bookworm@sha256:5148c0e4bbb64271bca1d3322360ebf4bfb7564507ae32dd639322e4952a6b16 AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
# Only the locked dependencies first: this layer is rebuilt when they change, not the code.
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY receiver ./receiver
# The build backend came from pip's isolated build environment: the venv's own setuptools
# (ensurepip's) is never used by the service. pip stays, for `pip check` and `pip list`.
RUN pip install --no-deps . && pip check && pip uninstall --yes --quiet setuptools

# -- runtime ---------------------------------------------------------------------------------
FROM python:3.11.10-slim-bookworm@sha256:5148c0e4bbb64271bca1d3322360ebf4bfb7564507ae32dd639322e4952a6b16
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RECEIVER_STORE=/var/lib/selfheal/journal.db \
    RECEIVER_LOG_FORMAT=json
COPY --from=build /opt/venv /opt/venv
COPY config /etc/selfheal/config
# The journal's directory, writable by the receiver's user (a volume in Kubernetes), and
# nothing else: the world-writable temporary directories lose their write bit (the
# Deployment mounts an emptyDir at /tmp; a read-only root filesystem needs none of them).
RUN mkdir -p /var/lib/selfheal && chown 10001:10001 /var/lib/selfheal \
    && chmod 0755 /tmp /var/tmp /run/lock
# A numeric user: Kubernetes' runAsNonRoot can only verify a numeric one.
USER 10001:10001
WORKDIR /var/lib/selfheal
EXPOSE 8080
# No HEALTHCHECK: Kubernetes probes /healthz and /readyz.
ENTRYPOINT ["receiver", "serve"]
CMD ["--config", "/etc/selfheal/config"]
