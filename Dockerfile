# One image, three binaries: auth-center, demo-service and gateway.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p auth-center -p demo-service -p gateway

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /var/lib/auth app \
    && mkdir -p /var/lib/auth && chown app /var/lib/auth
COPY --from=build /src/target/release/auth-center /src/target/release/demo-service \
    /src/target/release/gateway /usr/local/bin/
USER app
WORKDIR /var/lib/auth
