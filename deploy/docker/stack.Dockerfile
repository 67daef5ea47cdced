# The non-Rust parts of docker-compose.yml (Redis, PostgreSQL, nginx, Python) from Debian's
# packages, for a machine that cannot pull their official images: docker-compose.host.yml runs
# them from this one image. scripts/image.sh builds it on the local Debian base.
ARG BASE_IMAGE=local/debian:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server postgresql nginx python3 \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/* \
    # Only the compose file's own server blocks (the default site would take port 80).
    && rm -f /etc/nginx/sites-enabled/default \
    # A named volume mounted here starts with this ownership.
    && mkdir -p /var/lib/postgresql/data /data \
    && chown postgres:postgres /var/lib/postgresql/data
