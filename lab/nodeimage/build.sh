#!/usr/bin/env bash
# Build the Debian bookworm systemd node image used by molecule (localhost/meshops-node:bookworm)
# with mmdebstrap piped into `podman import`. The image is rebuilt only when it is missing or
# when its recipe (recipe.env next to this script) changed: the sha256 of the recipe is stored
# in the image label io.meshops.recipe-sha256.
#
# Usage: lab/nodeimage/build.sh [--force | --print-hash | --print-mirror]
# Environment:
#   MESHOPS_NODE_IMAGE   image name (default localhost/meshops-node:bookworm)
#   MESHOPS_NODE_MIRROR  Debian mirror URI (default: the one in /etc/apt/sources.list or
#                        /etc/apt/sources.list.d/*.sources that serves the recipe's suite)
#   MESHOPS_APT_ETC      where to read those apt sources (default /etc/apt)
#   MESHOPS_NODE_RECIPE  recipe file (default recipe.env next to this script)
#   CONTAINERS_CONF      podman configuration (default lab/podman/containers.conf)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/../.." && pwd)"
RECIPE="${MESHOPS_NODE_RECIPE:-$HERE/recipe.env}"
APT_ETC="${MESHOPS_APT_ETC:-/etc/apt}"
IMAGE="${MESHOPS_NODE_IMAGE:-localhost/meshops-node:bookworm}"
LABEL="io.meshops.recipe-sha256"
CACHE_DIR="/root/.cache/meshops-istio"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$REPO_ROOT/lab/podman/containers.conf}"

force=0
print=""
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    --print-hash) print=hash ;;
    --print-mirror) print=mirror ;;
    -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown argument '$arg' (use --force, --print-hash, --print-mirror or --help)" >&2; exit 2 ;;
  esac
done

log() { printf 'nodeimage: %s\n' "$*" >&2; }

# shellcheck source=recipe.env
. "$RECIPE"
# A recipe may source the base recipe next to this script and add to it (kubenode.env): then both
# shape the image and both are hashed.
if grep -Eq '^\. .*/recipe\.env"?$' "$RECIPE"; then
  recipe_hash="$(cat "$HERE/recipe.env" "$RECIPE" | sha256sum | cut -d' ' -f1)"
else
  recipe_hash="$(sha256sum < "$RECIPE" | cut -d' ' -f1)"
fi
if [ "$print" = hash ]; then
  echo "$recipe_hash"
  exit 0
fi

# Find the Debian mirror that serves $NODE_IMAGE_SUITE in the host's apt configuration, one-line
# format first (sources.list, sources.list.d/*.list), then deb822 .sources files. Nothing is
# hard-coded here.
find_mirror() {
  local suite="$1" f
  for f in "$APT_ETC/sources.list" "$APT_ETC"/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    # deb [options] URI suite components...
    awk -v suite="$suite" '
      $1 == "deb" {
        i = 2
        if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
        if ($(i + 1) == suite) { print $i; exit }
      }' "$f"
  done
  for f in "$APT_ETC"/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    # deb822 stanzas separated by blank lines; keys are case-insensitive.
    awk -v suite="$suite" '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && enabled !~ /^(no|false)$/ && uris != "") {
          split(uris, u, " "); print u[1]; found = 1; exit
        }
        types = ""; suites = ""; uris = ""; enabled = ""
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      {
        key = tolower($1); sub(/:$/, "", key)
        val = $0; sub(/^[^:]*:[ \t]*/, "", val)
        if (key == "types") types = val
        else if (key == "suites") suites = val
        else if (key == "uris") uris = val
        else if (key == "enabled") enabled = tolower(val)
      }
      END { if (!found) flush() }' "$f"
  done
}

if [ "$print" = mirror ]; then
  find_mirror "$NODE_IMAGE_SUITE" | head -n1
  exit 0
fi

for tool in podman mmdebstrap; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    log "$tool is not installed; fix: apt-get install podman runc mmdebstrap (see bindep.txt)"
    exit 1
  fi
done

mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/nodeimage.lock"
flock 9  # one build at a time (set-up script and molecule may both ask for the image)

current_hash=""
if podman image exists "$IMAGE"; then
  current_hash="$(podman image inspect --format "{{ index .Labels \"$LABEL\" }}" "$IMAGE" 2>/dev/null || true)"
fi
if [ "$force" = 0 ] && [ "$current_hash" = "$recipe_hash" ]; then
  log "$IMAGE is up to date (recipe $recipe_hash)"
  exit 0
fi

mirror="${MESHOPS_NODE_MIRROR:-$(find_mirror "$NODE_IMAGE_SUITE" | head -n1)}"
if [ -z "$mirror" ]; then
  log "no apt source for suite '$NODE_IMAGE_SUITE' in $APT_ETC/sources.list or $APT_ETC/sources.list.d/;"
  log "fix: set MESHOPS_NODE_MIRROR to a Debian mirror URI"
  exit 1
fi

old_id=""
if [ -n "$current_hash" ] || podman image exists "$IMAGE"; then
  old_id="$(podman image inspect --format '{{ .Id }}' "$IMAGE")"
  log "rebuilding $IMAGE (recipe changed: ${current_hash:-none} -> $recipe_hash)"
else
  log "building $IMAGE (recipe $recipe_hash)"
fi

packages="$(printf '%s\n' $NODE_IMAGE_PACKAGES | paste -sd, -)"
hooks=()
for hook in "${NODE_IMAGE_CUSTOMIZE_HOOKS[@]}"; do
  hooks+=(--customize-hook="$hook")
done
wheels=""
if [ -n "${NODE_IMAGE_PIP_PACKAGES:-}" ]; then
  # Bookworm's python3 is 3.11 on amd64: fetch wheels for exactly that, with the host's pip.
  wheels="$(mktemp -d)"
  trap 'rm -rf "$wheels"' EXIT
  # shellcheck disable=SC2086 # one requirement per word
  python3 -m pip download --quiet --only-binary=:all: --python-version 3.11 --implementation cp \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --dest "$wheels" $NODE_IMAGE_PIP_PACKAGES
  hooks+=(--customize-hook="mkdir -p \"\$1/tmp/wheels\" && cp $wheels/*.whl \"\$1/tmp/wheels/\"")
  hooks+=(--customize-hook="chroot \"\$1\" python3 -m pip install --quiet --no-index --find-links /tmp/wheels --break-system-packages $(printf '%q ' $NODE_IMAGE_PIP_PACKAGES) && rm -rf \"\$1/tmp/wheels\"")
fi
start=$SECONDS
mmdebstrap --quiet --variant="$NODE_IMAGE_VARIANT" --include="$packages" "${hooks[@]}" \
  "$NODE_IMAGE_SUITE" - "$mirror" \
  | podman import --quiet \
      --change 'CMD=["/sbin/init"]' \
      --change "LABEL=$LABEL=$recipe_hash" \
      --change "LABEL=io.meshops.suite=$NODE_IMAGE_SUITE" \
      --message "meshops node image, recipe $recipe_hash" \
      - "$IMAGE" >/dev/null

if [ -n "$old_id" ]; then
  # The previous build lost its tag; drop it unless a container still uses it.
  podman rmi "$old_id" >/dev/null 2>&1 || log "kept previous image $old_id (still in use)"
fi
log "built $IMAGE in $((SECONDS - start)) s from $mirror"
