# syntax=docker/dockerfile:1
# Gitplane's agent for a Kubernetes data plane (docs/kubernetes.md#images).
# Build from the repository root:  docker build -t gitplane:0.1.0 .
# Not built in CI here (no container engine): tests/packaging/test_dockerfile.py checks this
# file as text (stages, user, pinned bases, extras, what it copies).

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# Stage 1: the gitplane wheel and the wheels of everything it installs with its extras.
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY schemas/ schemas/
COPY ledger/ ledger/
COPY reconciler/ reconciler/
COPY agent/ agent/
COPY cli/ cli/
RUN python -m pip wheel --no-cache-dir --wheel-dir /wheels ".[ml,kubernetes]"

# Stage 2: the runtime, with no compiler, no source tree and no pip cache.
FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="gitplane" \
      org.opencontainers.image.description="Gitplane's data-plane agent: pulls signed commands from git, applies them, reports signed status." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.documentation="docs/kubernetes.md"
# git: the agent mirrors the spec repository and pushes its signed status (over HTTPS, or
# SSH with a deploy key: openssh-client).
RUN apt-get update \
 && apt-get install --yes --no-install-recommends git openssh-client ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m pip install --no-cache-dir --no-index --find-links /wheels "gitplane[ml,kubernetes]"
# A fixed UID and GID: the Deployment's runAsUser, runAsGroup and fsGroup name the same ones.
RUN groupadd --gid 10001 gitplane \
 && useradd --uid 10001 --gid 10001 --home-dir /home/gitplane --create-home \
        --shell /usr/sbin/nologin gitplane \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/gitplane \
 && install -d -m 0755 /etc/gitplane
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/home/gitplane
USER 10001:10001
WORKDIR /var/lib/gitplane
ENTRYPOINT ["gitplane"]
CMD ["agent", "run", "--config", "/etc/gitplane/agent.yaml"]
