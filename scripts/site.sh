#!/usr/bin/env bash
# The main job: ansible-playbook site.yml.
#   scripts/site.sh                          bring up the local lab and run site.yml against it
#   scripts/site.sh -i inventories/x/hosts.yml [ansible-playbook options]
#                                            run site.yml against your own cluster
# Installs what it needs first (scripts/setup.sh). Safe to run again: a second run changes nothing.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MESHOPS_HOME="${MESHOPS_HOME:-$HOME/.cache/meshops-istio}"
VENV="${MESHOPS_VENV:-$MESHOPS_HOME/venv}"
export CONTAINERS_CONF="$REPO_ROOT/lab/podman/containers.conf"
export ANSIBLE_CONFIG="$REPO_ROOT/ansible.cfg"
cd "$REPO_ROOT"

user_inventory=false
for argument in "$@"; do
  case "$argument" in -i | --inventory | --inventory=* | -i*) user_inventory=true ;; esac
done

if $user_inventory; then
  "$REPO_ROOT/scripts/setup.sh" debian python
  # shellcheck disable=SC1091
  source "$VENV/bin/activate"
  exec ansible-playbook site.yml "$@"
fi

"$REPO_ROOT/scripts/setup.sh"
# shellcheck disable=SC1091
source "$VENV/bin/activate"

# The lab: node containers, the Kubernetes control plane (real binaries, listening on the lab
# network's bridge address so that cp1 reaches it), the kubeconfig inside cp1, sidecar pods
# inside the workers for the audit, and the release bundle istioctl installs from.
LAB_STATE="$MESHOPS_HOME/lab/site-state"
python -m lab.nodes up >/dev/null
gateway="$(python -m lab.nodes status | python -c 'import json, sys; print(json.load(sys.stdin)["gateway"])')"
lab/labctl up --state-dir "$LAB_STATE" --bind-address "$gateway" --inventory inventories/lab/hosts.yml
eval "$(lab/labctl env --state-dir "$LAB_STATE")"
ansible-playbook -i inventories/lab/hosts.yml lab/playbooks/prepare.yml \
  -e "lab_kubeconfig=$(lab/labctl kubeconfig --state-dir "$LAB_STATE" --for-address "$gateway")"

report_dir="$REPO_ROOT/reports/network-audit"
ansible-playbook -i inventories/lab/hosts.yml site.yml \
  -e "istioctl_version=$LAB_ISTIO_VERSION" \
  -e "istioctl_archive_src=$LAB_BUNDLE_ARCHIVE" \
  -e "network_audit_report_dir=$report_dir" \
  "$@"

echo
echo "Lab: $(lab/labctl status --state-dir "$LAB_STATE" >/dev/null && echo up) - stop it with:"
echo "  lab/labctl down --state-dir $LAB_STATE && python -m lab.nodes down"
echo "Network audit reports: $report_dir"
ls -1 "$report_dir" 2>/dev/null | sed 's/^/  /'
