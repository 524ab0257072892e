#!/usr/bin/env bash
# Installs everything the main job and the tests need on a fresh Debian 12 machine (root, no
# internet but the package registries). Safe to run again: each step checks before it works.
#   scripts/setup.sh [python] [debian] [node-image] [lab]    (default: all of them)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MESHOPS_HOME="${MESHOPS_HOME:-$HOME/.cache/meshops-istio}"
VENV="${MESHOPS_VENV:-$MESHOPS_HOME/venv}"
export CONTAINERS_CONF="$REPO_ROOT/lab/podman/containers.conf"

log() { printf '[setup] %s\n' "$*" >&2; }

setup_debian() {
  # bindep.txt is the list; only the package names are needed here.
  local missing=()
  local name
  while read -r name; do
    dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q "install ok installed" || missing+=("$name")
  done < <(grep -Ev '^\s*(#|$)' "$REPO_ROOT/bindep.txt" | awk '{print $1}')
  if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    log "Debian packages present"
  fi
}

setup_python() {
  local stamp="$VENV/.requirements.sha256"
  local want
  want="$(cat "$REPO_ROOT/requirements.txt" "$REPO_ROOT/requirements-dev.txt" | sha256sum | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    log "Python virtualenv up to date: $VENV"
  else
    log "creating Python virtualenv $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REPO_ROOT/requirements-dev.txt"
    echo "$want" >"$stamp"
  fi
  # ansible-test downloads a pip bootstrap script from a host these machines cannot reach;
  # give it ours (see scripts/lib/get_pip_offline.py).
  local pip_version
  pip_version="$(grep -oP "pip='\K[0-9.]+" "$("$VENV/bin/python" -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')/_internal/python_requirements.py" | head -n1)"
  mkdir -p "$HOME/.ansible/test/cache"
  cp "$REPO_ROOT/scripts/lib/get_pip_offline.py" "$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
}

setup_node_image() {
  log "node images (molecule's, and the lab's Kubernetes nodes')"
  "$REPO_ROOT/lab/nodeimage/build.sh"
  MESHOPS_NODE_RECIPE="$REPO_ROOT/lab/nodeimage/kubenode.env" MESHOPS_NODE_IMAGE=localhost/meshops-kubenode:bookworm \
    "$REPO_ROOT/lab/nodeimage/build.sh"
}

setup_lab() {
  log "lab cluster binaries and istio bundle (built from Go modules; cached)"
  "$VENV/bin/python" "$REPO_ROOT/lab/labctl" build
  "$VENV/bin/python" "$REPO_ROOT/lab/labctl" bundle >/dev/null
  log "lab images (built locally, cached by content)"
  (cd "$REPO_ROOT" && "$VENV/bin/python" -c 'from lab.images import catalog; catalog.build_all(samples=True)')
}

steps=("$@")
((${#steps[@]})) || steps=(debian python node-image lab)
for step in "${steps[@]}"; do
  case "$step" in
    debian) setup_debian ;;
    python) setup_python ;;
    node-image) setup_node_image ;;
    lab) setup_lab ;;
    *) echo "setup.sh: unknown step '$step' (choose: debian python node-image lab)" >&2; exit 2 ;;
  esac
done
