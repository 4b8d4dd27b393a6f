# syntax=docker/dockerfile:1
# dastra-connect: one image for every role (connectors, emulator, dlq tools).
#
#   docker build -t dastra-connect:dev .
#   docker run --rm --read-only --tmpfs /tmp -p 9090:9090 -v $PWD/my.yaml:/etc/dastra-connect/config.yaml:ro dastra-connect:dev
#
# Build prerequisites (all present in the official rust:*-bookworm image used below): a C toolchain
# and make (librdkafka is compiled from source by rdkafka-sys, aws-lc by aws-lc-sys, mimalloc by
# libmimalloc-sys), pkg-config and
# the OpenSSL headers (libssl-dev: rdkafka's `ssl` feature links the system OpenSSL for Kafka TLS;
# HTTPS to Dastra uses rustls and needs no OpenSSL), zlib headers (zlib1g-dev). The runtime image
# therefore needs libssl3, zlib and CA certificates.

ARG RUST_VERSION=1.95.0
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
# Listed explicitly so a different base image fails here, not deep inside a build script.
# Versions are not pinned (hadolint DL3008): the stable release's security updates must get in, and
# Debian removes superseded versions, so a pin would break the build on its next security fix.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# rust-toolchain.toml pins the same toolchain as the image; --locked uses Cargo.lock as committed.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p dastra-connect \
 && install -D -m 0755 target/release/dastra-connect /out/dastra-connect

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="dastra-connect" \
      org.opencontainers.image.description="Syncs a GDPR register in Dastra from CMDB, CRM and catalog systems over Kafka or NATS" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://example.invalid/dastra-connect" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /etc/dastra-connect /data \
 && chown 10001:10001 /data
COPY --from=build /out/dastra-connect /usr/local/bin/dastra-connect
# Numeric non-root user (Kubernetes `runAsNonRoot` can check a number, not a name).
USER 10001:10001
# The root filesystem may be read-only: the process writes only to $TMPDIR (mount a tmpfs or an
# emptyDir at /tmp) and to /data when a connector is configured to (e.g. the files source's exports).
ENV TMPDIR=/tmp
WORKDIR /data
# 9090: admin server (/metrics, /healthz, /readyz, /status). 8081: the webhook receiver, when configured.
EXPOSE 9090 8081
# Liveness of `run` on the default admin port; docker-compose and Kubernetes set their own probes.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/dastra-connect", "probe", "http://127.0.0.1:9090/healthz"]
ENTRYPOINT ["/usr/local/bin/dastra-connect"]
CMD ["run", "--config", "/etc/dastra-connect/config.yaml"]
