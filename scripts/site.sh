#!/usr/bin/env bash
# The main job: ansible-playbook site.yml.
#   scripts/site.sh                          bring up the local lab and run site.yml against it
#   MESHOPS_LAB_NODES=real scripts/site.sh   the same on a lab whose nodes run the pods: Istio's and
#                                            the samples' images loaded by the images role, the
#                                            whole tutorial for real (lab meshops-mesh)
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

# kwok (default): simulated nodes, pods get a status and no process (lab/README.md); real: the
# lab's nodes run kubelets and containerd, and the lab builds Istio's and the samples' images.
case "${MESHOPS_LAB_NODES:-kwok}" in
  kwok) lab=meshops-lab up_args=(--nodes kwok) ;;
  real) lab=meshops-mesh up_args=(--nodes real --samples) ;;
  *) echo "site.sh: MESHOPS_LAB_NODES is '${MESHOPS_LAB_NODES}'; set it to kwok (the default) or real" >&2; exit 2 ;;
esac
export MESHOPS_LAB="$lab"

"$REPO_ROOT/scripts/setup.sh"
# shellcheck disable=SC1091
source "$VENV/bin/activate"

# The lab (lab/stack.py): node containers, the Kubernetes control plane built from Go modules
# (listening on the lab network's bridge address so that cp1 reaches it), the release bundle
# istioctl installs from; then the kubeconfig inside cp1 and sidecar pods in the nodes.
python -m lab.stack up --lab "$lab" "${up_args[@]}"
ansible-playbook -i inventories/lab/hosts.yml lab/playbooks/prepare.yml

report_dir="${MESHOPS_REPORT_DIR:-$REPO_ROOT/reports/network-audit}"
ansible-playbook -i inventories/lab/hosts.yml site.yml -e "network_audit_report_dir=$report_dir" "$@"

echo
echo "The lab is still up; stop it with: $VENV/bin/python -m lab.stack down --lab $lab"
echo "Network audit reports: $report_dir"
ls -1 "$report_dir" 2>/dev/null | sed 's/^/  /'
