# A Rust builder made from a local Debian base and a Rust toolchain copied from the host, for
# machines that cannot pull `rust:1.95-bookworm` (scripts/image.sh builds it). The build
# context holds the toolchain as `rust/` (its bin/, lib/ and libexec/, without share/) and
# `ca/`, extra CA certificates (*.crt) of the host that cargo needs to reach crates.io through
# a TLS-inspecting proxy (often empty).
ARG BASE_IMAGE=local/debian:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates gcc g++ libc6-dev make cmake perl pkg-config \
    && rm -rf /var/lib/apt/lists/*
COPY ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates
COPY rust/ /usr/local/rust/
ENV CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN mkdir -p /usr/local/cargo/bin && rustc --version && cargo --version
