# One image with the workspace's servers: auth-center (the default command), demo-service and
# gateway. Multi-stage: cargo-chef builds the dependencies in a layer of their own, cached
# until Cargo.toml or Cargo.lock change; the final stage is Debian slim with the binaries,
# a non-root user and nothing else (no compiler, no curl: the binaries check their own health).
#
#   docker build -t auth-center .
#   docker run -p 8080:8080 auth-center            # embedded default: SQLite + in-memory sessions
#
# Without access to a public registry, build on local base images (scripts/image.sh makes them
# from Debian packages):
#   docker build --build-arg RUST_IMAGE=local/rust:1.95-bookworm \
#                --build-arg RUNTIME_IMAGE=local/debian:bookworm -t auth-center .
ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# --- cargo-chef --------------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

# The dependency recipe: changes only when a manifest or the lock file does.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# --- build -------------------------------------------------------------------------------------
FROM chef AS build
# Packages whose binaries go into the image (one binary each, named like the package).
ARG PACKAGES="auth-center demo-service gateway"
ENV CARGO_PROFILE_RELEASE_STRIP=symbols
COPY --from=planner /src/recipe.json recipe.json
# The dependencies alone: this layer is reused while only the workspace's own code changes.
RUN set -eu; args=""; for p in $PACKAGES; do args="$args -p $p"; done; \
    cargo chef cook --release --locked --recipe-path recipe.json $args
COPY . .
RUN set -eu; args=""; for p in $PACKAGES; do args="$args -p $p"; done; \
    cargo build --release --locked $args; \
    mkdir -p /out; for p in $PACKAGES; do cp "target/release/$p" /out/; done

# --- runtime -----------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE}
# ca-certificates: the public CAs for https JWKS URLs and TLS to managed Redis and Postgres.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /var/lib/auth --shell /usr/sbin/nologin app \
    && mkdir -p /var/lib/auth && chown app:app /var/lib/auth
COPY --from=build /out/ /usr/local/bin/
USER 10001:10001
WORKDIR /var/lib/auth
# Inside a container the server must be reachable from outside it; the binaries' own
# default stays loopback. DATABASE_URL defaults to a SQLite file in the writable work dir.
ENV LISTEN_ADDR=0.0.0.0:8080 \
    AUTH_LOG_FORMAT=json \
    RUST_LOG=info
EXPOSE 8080
# `healthcheck` asks the server on LISTEN_ADDR for /healthz (over TLS when TLS_CERT_FILE is
# set); the demo-service and the gateway have the same subcommand.
HEALTHCHECK --interval=10s --timeout=6s --start-period=20s --retries=3 \
    CMD ["auth-center", "healthcheck"]
CMD ["auth-center", "serve"]
