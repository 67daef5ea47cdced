#!/usr/bin/env bash
# Builds the container image and runs the docker-compose stack with a smoke test, on a machine
# that cannot pull from a public registry: every base image is made here from Debian packages.
# Not part of scripts/test.sh (it takes minutes); run it after changing the Dockerfile, the
# compose files or what the binaries need at start.
#
#   scripts/image.sh            # everything below, in order; the stack is removed at the end
#   scripts/image.sh base       # local/debian:bookworm (debootstrap), local/rust:1.95-bookworm
#                               # (that + the host's Rust toolchain), local/stack:bookworm
#                               # (Redis, PostgreSQL, nginx, Python from Debian)
#   scripts/image.sh build      # the image (Dockerfile) on those bases: local/auth-center:dev
#   scripts/image.sh up         # the stack: docker-compose.yml + docker-compose.host.yml,
#                               # host networking, 127.0.0.1 on free ports
#   scripts/image.sh smoke      # register, login, /me at the demo-service, a call through
#                               # nginx + gateway to the Python upstream
#   scripts/image.sh down       # stop and remove the stack's containers and volumes
#
# STACK_SERVICES="redis postgres auth-center" limits `up` to those services (and what they
# depend on); the smoke test then skips the parts whose services are not running.
#
# Needs: docker (a daemon that runs), docker-compose, debootstrap, curl, python3, a Rust
# toolchain (rustup's default) to copy into the builder. As root on Debian, missing
# docker-compose and debootstrap are installed with apt-get. The builds use the host's network
# (`--network host`) to reach crates.io and the Debian mirror; CA certificates added to the host
# (/usr/local/share/ca-certificates) go into the builder image, for a TLS-inspecting proxy.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '[image.sh] %s\n' "$*" >&2; }
die() {
  say "ERROR: $*"
  exit 1
}

DEBIAN_SUITE=bookworm
DEBIAN_MIRROR=${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\([^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE_IMAGE=local/debian:$DEBIAN_SUITE
RUST_IMAGE=local/rust:1.95-$DEBIAN_SUITE
STACK_IMAGE=local/stack:$DEBIAN_SUITE
AUTH_IMAGE=${AUTH_IMAGE:-local/auth-center:dev}
PROJECT=${STACK_PROJECT:-authstack}
WORK=$(mkdir -p "${CARGO_TARGET_DIR:-target}/image" && cd "${CARGO_TARGET_DIR:-target}/image" && pwd)
STATE=$WORK/stack.env # the ports and paths of the running stack

need() { command -v "$1" >/dev/null 2>&1; }

install_missing() {
  local missing=()
  need docker-compose || missing+=(docker-compose)
  [ -x /usr/sbin/debootstrap ] || need debootstrap || missing+=(debootstrap)
  [ "${#missing[@]}" = 0 ] && return 0
  [ "$(id -u)" = 0 ] && need apt-get || die "missing: ${missing[*]}"
  say "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2 ||
    { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2; }
}

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# --- base images ---------------------------------------------------------------------------------

base_images() {
  install_missing
  if have_image "$BASE_IMAGE"; then
    say "$BASE_IMAGE exists"
  else
    local rootfs=$WORK/rootfs
    rm -rf "$rootfs"
    say "debootstrap --variant=minbase $DEBIAN_SUITE from $DEBIAN_MIRROR (a few minutes)"
    debootstrap --variant=minbase "$DEBIAN_SUITE" "$rootfs" "$DEBIAN_MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
      die "debootstrap failed, see $WORK/debootstrap.log"
    # What debian:bookworm-slim leaves out: package lists, caches, documentation, locales.
    rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* \
      "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
    tar -C "$rootfs" -c . | docker import \
      -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      -c 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs"
    say "made $BASE_IMAGE"
  fi
  if have_image "$RUST_IMAGE"; then
    say "$RUST_IMAGE exists"
  else
    local toolchain ctx=$WORK/rust-context
    toolchain=$(rustc --print sysroot) || die "no Rust toolchain to copy (rustc --print sysroot)"
    "$toolchain/bin/rustc" --version | grep -q '^rustc 1\.9[5-9]\|^rustc 1\.[1-9][0-9][0-9]' ||
      die "the host's toolchain is older than 1.95: $("$toolchain/bin/rustc" --version)"
    rm -rf "$ctx" && mkdir -p "$ctx/rust" "$ctx/ca"
    cp -a "$toolchain/bin" "$toolchain/lib" "$ctx/rust/"
    [ -d "$toolchain/libexec" ] && cp -a "$toolchain/libexec" "$ctx/rust/"
    cp /usr/local/share/ca-certificates/*.crt "$ctx/ca/" 2>/dev/null || true
    say "building $RUST_IMAGE from $BASE_IMAGE and $("$toolchain/bin/rustc" --version)"
    docker build --network host -q --build-arg BASE_IMAGE="$BASE_IMAGE" -t "$RUST_IMAGE" \
      -f deploy/docker/rust.Dockerfile "$ctx" >/dev/null
    rm -rf "$ctx"
  fi
  if have_image "$STACK_IMAGE"; then
    say "$STACK_IMAGE exists"
  else
    say "building $STACK_IMAGE (redis-server, postgresql, nginx, python3 from Debian)"
    docker build --network host -q --build-arg BASE_IMAGE="$BASE_IMAGE" -t "$STACK_IMAGE" \
      -f deploy/docker/stack.Dockerfile deploy/docker >/dev/null
  fi
}

# --- the image -----------------------------------------------------------------------------------

build_image() {
  have_image "$RUST_IMAGE" && have_image "$BASE_IMAGE" || base_images
  local started=$SECONDS
  say "docker build -t $AUTH_IMAGE (dependencies cached in their own layer by cargo-chef)"
  docker build --network host \
    --build-arg RUST_IMAGE="$RUST_IMAGE" --build-arg RUNTIME_IMAGE="$BASE_IMAGE" \
    -t "$AUTH_IMAGE" . >"$WORK/build.log" 2>&1 || {
    tail -n 40 "$WORK/build.log" >&2
    die "docker build failed, see $WORK/build.log"
  }
  say "built $AUTH_IMAGE in $((SECONDS - started)) s: $(docker image inspect -f '{{.Size}}' "$AUTH_IMAGE" |
    awk '{printf "%.1f MB", $1 / 1000000}') (base $(docker image inspect -f '{{.Size}}' "$BASE_IMAGE" |
    awk '{printf "%.1f MB", $1 / 1000000}'))"
  docker image inspect -f 'user={{.Config.User}} exposed={{json .Config.ExposedPorts}} cmd={{json .Config.Cmd}} healthcheck={{json .Config.Healthcheck.Test}}' "$AUTH_IMAGE" >&2
}

# --- the stack -----------------------------------------------------------------------------------

compose() {
  # shellcheck source=/dev/null
  set -a && . "$STATE" && set +a
  docker-compose -f docker-compose.yml -f docker-compose.host.yml -p "$PROJECT" "$@"
}

free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

stack_up() {
  have_image "$AUTH_IMAGE" || build_image
  have_image "$STACK_IMAGE" || base_images
  local ports secrets=$WORK/secrets password
  read -r -a ports <<<"$(free_ports 7)"
  mkdir -p "$secrets"
  password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
  printf '%s\n' "$password" >"$secrets/postgres_password"
  printf 'postgres://auth:%s@127.0.0.1:%s/auth\n' "$password" "${ports[1]}" >"$secrets/database_url"
  chmod 0644 "$secrets"/* # read by the containers' own users
  cat >"$STATE" <<EOF
AUTH_IMAGE=$AUTH_IMAGE
STACK_IMAGE=$STACK_IMAGE
REDIS_PORT=${ports[0]}
PG_PORT=${ports[1]}
AUTH_PORT=${ports[2]}
DEMO_PORT=${ports[3]}
GATEWAY_PORT=${ports[4]}
ECHO_PORT=${ports[5]}
NGINX_PORT=${ports[6]}
STACK_SECRETS_DIR=$secrets
EOF
  compose config -q || die "the compose files are not valid"
  say "starting the stack (project $PROJECT): $(tr '\n' ' ' <"$STATE")"
  # shellcheck disable=SC2086 # a list of names
  if ! compose up -d --no-build ${STACK_SERVICES:-} >"$WORK/up.log" 2>&1; then
    cat "$WORK/up.log" >&2
    compose ps >&2 || true
    compose logs --tail 30 >&2 || true
    die "the stack did not start"
  fi
  wait_healthy
  compose ps >&2
}

# Waits until every container of the stack is healthy (depends_on already waited for most).
wait_healthy() {
  local deadline=$((SECONDS + 180)) id state unhealthy
  while :; do
    unhealthy=""
    for id in $(compose ps -q); do
      state=$(docker inspect -f '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$id")
      case $state in
        *" running healthy" | *" running none") ;;
        *) unhealthy="$unhealthy [$state]" ;;
      esac
    done
    [ -z "$unhealthy" ] && return 0
    if [ "$SECONDS" -ge "$deadline" ]; then
      compose logs --tail 30 >&2 || true
      die "not healthy after 180 s:$unhealthy"
    fi
    sleep 2
  done
}

# --- the smoke test ------------------------------------------------------------------------------

smoke() {
  # shellcheck source=/dev/null
  . "$STATE"
  local auth=http://127.0.0.1:$AUTH_PORT demo=http://127.0.0.1:$DEMO_PORT
  local nginx=http://127.0.0.1:$NGINX_PORT json='content-type: application/json'
  local user password tokens access status body
  user="smoke$RANDOM$RANDOM" password="correct horse battery staple"
  field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
  check() { # check WHAT EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then say "ok   $1: $3"; else die "$1: expected $2, got $3"; fi
  }

  status=$(curl -s -o /dev/null -w '%{http_code}' "$auth/readyz")
  check "auth-center /readyz" 200 "$status"
  status=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$auth/v1/register" -H "$json" \
    -d "{\"username\":\"$user\",\"password\":\"$password\"}")
  check "register $user" 201 "$status"
  tokens=$(curl -sf -X POST "$auth/v1/login" -H "$json" \
    -d "{\"username\":\"$user\",\"password\":\"$password\"}") || die "login failed"
  access=$(field access_token <<<"$tokens")
  say "ok   login: session $(field session_id <<<"$tokens")"
  body=$(curl -sf "$auth/v1/me" -H "Authorization: Bearer $access") || die "/v1/me failed"
  check "auth-center /v1/me username" "$user" "$(field username <<<"$body")"
  body=$(curl -sf "$demo/me" -H "Authorization: Bearer $access") || die "demo-service /me failed"
  say "ok   demo-service /me: $body"
  status=$(curl -s -o /dev/null -w '%{http_code}' "$demo/me")
  check "demo-service /me without a token" 401 "$status"

  local through_nginx=1
  if [ -z "$(compose ps -q nginx 2>/dev/null)" ]; then
    through_nginx=0
    say "skipped: the calls through nginx and the gateway (nginx is not running)"
  fi
  if [ "$through_nginx" = 1 ]; then
    # Through nginx: auth_request to the gateway, then the Python upstream.
    body=$(curl -sf "$nginx/orders?x=1" -H "Authorization: Bearer $access" \
      -H "X-Auth-Subject: forged") || die "the call through nginx failed"
    local subject sub
    subject=$(python3 -c '
import json, sys
headers = json.load(sys.stdin)["headers"]
print(",".join(v for k, v in headers if k.lower() == "x-auth-subject"))' <<<"$body")
    sub=$(python3 -c 'import base64, json, sys
p = sys.argv[1].split(".")[1]; print(json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))["sub"])' "$access")
    check "nginx -> gateway -> python upstream: X-Auth-Subject (the forged one dropped)" "$sub" "$subject"
    status=$(curl -s -o /dev/null -w '%{http_code}' "$nginx/orders" -H "X-Auth-Subject: forged")
    check "nginx without a token" 401 "$status"
  fi
  status=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$auth/v1/logout" -H "Authorization: Bearer $access")
  check "logout" 204 "$status"
  status=$(curl -s -o /dev/null -w '%{http_code}' "$demo/me" -H "Authorization: Bearer $access")
  check "demo-service after logout" 401 "$status"
  if [ "$through_nginx" = 1 ]; then
    status=$(curl -s -o /dev/null -w '%{http_code}' "$nginx/orders" -H "Authorization: Bearer $access")
    check "nginx after logout" 401 "$status"
  fi
  say "smoke test passed"
}

stack_down() {
  [ -f "$STATE" ] || return 0
  say "stopping and removing the stack (project $PROJECT)"
  compose down -v --remove-orphans >&2 2>&1 || true
  rm -f "$STATE"
}

case ${1:-all} in
  base) base_images ;;
  build) build_image ;;
  up) stack_up ;;
  smoke) smoke ;;
  down) stack_down ;;
  all)
    base_images
    build_image
    trap stack_down EXIT
    stack_up
    smoke
    ;;
  *) die "unknown step ${1} (base, build, up, smoke, down or nothing for all)" ;;
esac
