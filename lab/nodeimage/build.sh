#!/usr/bin/env bash
# Build the Debian bookworm systemd node image used by molecule (localhost/meshops-node:bookworm)
# with mmdebstrap piped into `podman import`. The image is rebuilt only when it is missing or
# when its recipe (recipe.env next to this script, and this script) changed: the recipe hash
# is stored in the image label io.meshops.recipe-sha256.
#
# Usage: lab/nodeimage/build.sh [--force] [--print-hash]
# Environment:
#   MESHOPS_NODE_IMAGE   image name (default localhost/meshops-node:bookworm)
#   MESHOPS_NODE_MIRROR  Debian mirror URI (default: the one in /etc/apt/sources.list or
#                        /etc/apt/sources.list.d/*.sources that serves the recipe's suite)
#   CONTAINERS_CONF      podman configuration (default lab/podman/containers.conf)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/../.." && pwd)"
RECIPE="$HERE/recipe.env"
IMAGE="${MESHOPS_NODE_IMAGE:-localhost/meshops-node:bookworm}"
LABEL="io.meshops.recipe-sha256"
CACHE_DIR="/root/.cache/meshops-istio"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$REPO_ROOT/lab/podman/containers.conf}"

force=0
print_hash=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    --print-hash) print_hash=1 ;;
    -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown argument '$arg' (use --force, --print-hash or --help)" >&2; exit 2 ;;
  esac
done

log() { printf 'nodeimage: %s\n' "$*" >&2; }

# shellcheck source=recipe.env
. "$RECIPE"
recipe_hash="$(cat "$RECIPE" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)"
if [ "$print_hash" = 1 ]; then
  echo "$recipe_hash"
  exit 0
fi

for tool in podman mmdebstrap; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    log "$tool is not installed; fix: apt-get install podman runc mmdebstrap (see bindep.txt)"
    exit 1
  fi
done

# Find the Debian mirror that serves $NODE_IMAGE_SUITE in the host's apt configuration, one-line
# format first, then deb822 .sources files. Nothing is hard-coded here.
find_mirror() {
  local suite="$1" f
  if [ -r /etc/apt/sources.list ]; then
    # deb [options] URI suite components...
    awk -v suite="$suite" '
      $1 == "deb" {
        i = 2
        if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
        if ($(i + 1) == suite) { print $i; exit }
      }' /etc/apt/sources.list
  fi
  for f in /etc/apt/sources.list.d/*.sources; do
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
  log "no apt source for suite '$NODE_IMAGE_SUITE' in /etc/apt/sources.list or /etc/apt/sources.list.d/*.sources;"
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
start=$SECONDS
# The customize hook gives every container its own machine-id (systemd creates it at boot)
# and keeps the first boot quiet; the image stays a plain Debian system otherwise.
mmdebstrap --quiet --variant="$NODE_IMAGE_VARIANT" --include="$packages" \
  --customize-hook='rm -f "$1/etc/machine-id" "$1/var/lib/dbus/machine-id"; : > "$1/etc/machine-id"' \
  --customize-hook='chroot "$1" systemctl mask getty@tty1.service console-getty.service systemd-remount-fs.service >/dev/null 2>&1 || true' \
  "$NODE_IMAGE_SUITE" - "$mirror" \
  | podman import \
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
