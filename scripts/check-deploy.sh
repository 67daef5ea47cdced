#!/usr/bin/env bash
# Checks the deployment files offline; scripts/test.sh runs it with the whole suite.
#
#   scripts/check-deploy.sh
#
# 1. deploy/k8s/*.yaml against the Kubernetes API schemas, strictly (unknown fields are
#    errors), with `kubernetes-validate` from PyPI in a virtualenv under the cargo target
#    directory (made once, then reused). Without Python and pip this check is skipped with a
#    warning, except in CI (CI=true), where that is an error.
# 2. docker-compose.yml with docker-compose.override.yml (what `docker-compose up` reads) and
#    with docker-compose.host.yml, with `docker-compose config -q`.
#    As root on Debian a missing docker-compose is installed with apt-get; otherwise the check
#    is skipped with a warning.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '[check-deploy] %s\n' "$*" >&2; }
die() {
  say "ERROR: $*"
  exit 1
}

K8S_VALIDATE=("kubernetes-validate>=1.30,<2")

target_dir() {
  local dir=${CARGO_TARGET_DIR:-target}
  mkdir -p "$dir" && (cd "$dir" && pwd)
}

as_root_on_debian() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }

apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >&2 ||
    { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >&2; }
}

kubernetes_validate() {
  local venv python
  venv="$(target_dir)/deploy-venv"
  if [ ! -x "$venv/bin/kubernetes-validate" ]; then
    python=$(command -v python3 || true)
    if { [ -z "$python" ] || ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; } && as_root_on_debian; then
      say "python3 or its venv module is missing; installing them"
      apt_install python3 python3-venv python3-pip || true
      python=$(command -v python3 || true)
    fi
    rm -rf "$venv"
    if ! { [ -n "$python" ] && "$python" -m venv "$venv" >&2 &&
      "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${K8S_VALIDATE[@]}" >&2; }; then
      [ "${CI:-}" = true ] && die "could not install ${K8S_VALIDATE[*]} to check deploy/k8s (CI=true)"
      say "WARNING: no kubernetes-validate (Python and pip needed): deploy/k8s is not checked"
      return 0
    fi
  fi
  "$venv/bin/kubernetes-validate" --strict --quiet deploy/k8s/*.yaml ||
    die "deploy/k8s does not validate (see above)"
  say "deploy/k8s: $(ls deploy/k8s/*.yaml | wc -l) files valid (kubernetes-validate $("$venv/bin/kubernetes-validate" --version), --strict)"
}

compose_config() {
  if ! command -v docker-compose >/dev/null 2>&1 && as_root_on_debian; then
    say "docker-compose is missing; installing it"
    apt_install docker-compose || true
  fi
  if ! command -v docker-compose >/dev/null 2>&1; then
    say "WARNING: no docker-compose: the compose files are not checked"
    return 0
  fi
  docker-compose config -q || die "docker-compose.yml with docker-compose.override.yml is not valid"
  docker-compose -f docker-compose.yml -f docker-compose.host.yml config -q ||
    die "docker-compose.yml with docker-compose.host.yml is not valid"
  say "docker-compose.yml, docker-compose.override.yml and docker-compose.host.yml: valid ($(docker-compose version --short 2>/dev/null))"
}

kubernetes_validate
compose_config
