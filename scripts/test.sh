#!/usr/bin/env bash
# Runs every test tier of meshops.istio, installing what it needs first (scripts/setup.sh).
#   scripts/test.sh                 all tiers
#   scripts/test.sh unit lint ...   only those tiers
# Tiers: lint sanity build unit integration molecule benchmarks
# Exit status is non-zero when any tier fails or when no test ran at all.
set -uo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MESHOPS_HOME="${MESHOPS_HOME:-$HOME/.cache/meshops-istio}"
VENV="${MESHOPS_VENV:-$MESHOPS_HOME/venv}"
RESULTS="${MESHOPS_TEST_RESULTS:-$REPO_ROOT/tests/output/results}"
export CONTAINERS_CONF="$REPO_ROOT/lab/podman/containers.conf"
export ANSIBLE_CONFIG="$REPO_ROOT/ansible.cfg"
export PY_COLORS=0 ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0

ALL_TIERS=(lint sanity build unit integration molecule benchmarks)
tiers=("$@")
((${#tiers[@]})) || tiers=("${ALL_TIERS[@]}")

needs() { local t; for t in "${tiers[@]}"; do [[ " $* " == *" $t "* ]] && return 0; done; return 1; }

setup_steps=(debian python)
needs integration molecule benchmarks && setup_steps+=(node-image)
needs integration benchmarks molecule && setup_steps+=(lab)
"$REPO_ROOT/scripts/setup.sh" "${setup_steps[@]}" || { echo "setup failed" >&2; exit 1; }
# shellcheck disable=SC1091
source "$VENV/bin/activate"
cd "$REPO_ROOT" || exit 1
rm -rf "$RESULTS" && mkdir -p "$RESULTS"

# Managed nodes may run any Python from 3.9 to 3.13 (README, preflight_min_python_version); the
# node-side code (modules, module_utils) is checked under each: ansible-test's compile and
# import tests for every one, the node-side unit tests under the oldest and the newest.
NODE_PYTHONS=(3.9 3.10 3.11 3.12 3.13)
NODE_UNIT_PYTHONS=(3.9 3.13)
NODE_UNIT_TESTS=(tests/unit/images tests/unit/injection tests/unit/iptables tests/unit/k8s tests/unit/mesh
  tests/unit/network_audit tests/unit/nftables tests/unit/preflight tests/unit/verify)

find_python() { # X.Y -> path of a working pythonX.Y (pyenv's versions first), or nothing
  local version="$1" candidate
  for candidate in "$(pyenv root 2>/dev/null)"/versions/"$version".*/bin/python"$version" "$(command -v "python$version")"; do
    [[ -x "$candidate" ]] && "$candidate" -c '' 2>/dev/null && { echo "$candidate"; return 0; }
  done
  return 1
}

# A directory of pythonX.Y links for ansible-test (a pyenv shim of a version that is not
# selected refuses to run).
node_python_path() {
  local dir version exe
  dir="$(mktemp -d)"
  for version in "${NODE_PYTHONS[@]}"; do
    exe="$(find_python "$version")" && ln -s "$exe" "$dir/python$version"
  done
  echo "$dir"
}

node_unit_venv() { # X.Y -> python of a virtualenv with requirements-node-test.txt
  local version="$1" exe venv stamp want
  exe="$(find_python "$version")" || return 1
  venv="$MESHOPS_HOME/venv-node-py$version"
  stamp="$venv/.requirements.sha256"
  want="$(sha256sum <"$REPO_ROOT/requirements-node-test.txt" | cut -d' ' -f1)"
  if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    "$exe" -m venv "$venv" >&2 && "$venv/bin/pip" install -q --disable-pip-version-check \
      -r "$REPO_ROOT/requirements-node-test.txt" >&2 && echo "$want" >"$stamp" || return 1
  fi
  echo "$venv/bin/python"
}

declare -A tier_status=()
passed=0 failed=0 skipped=0

record_gate() { # name rc
  if [[ "$2" == 0 ]]; then passed=$((passed + 1)); tier_status[$1]="ok"; else failed=$((failed + 1)); tier_status[$1]="FAILED"; fi
}

run_pytest() { # tier, pytest args...
  run_pytest_with python "$@"
}

run_pytest_with() { # python, tier, pytest args...
  local python="$1" tier="$2"; shift 2
  "$python" -m pytest -p no:cacheprovider --junitxml="$RESULTS/$tier.xml" "$@"
  local rc=$?
  # exit code 5 means "no tests collected": a tier with no tests is reported, never a pass.
  if [[ $rc == 5 ]]; then tier_status[$tier]="NO TESTS"; failed=$((failed + 1)); return; fi
  read -r p f s < <(python - "$RESULTS/$tier.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root)
t = sum(int(s.get("tests", 0)) for s in suites)
f = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
s = sum(int(s.get("skipped", 0)) for s in suites)
print(t - f - s, f, s)
PY
)
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
  if [[ $rc == 0 ]]; then tier_status[$tier]="ok ($p passed, $s skipped)"; else
    tier_status[$tier]="FAILED ($f failed)"; [[ $f == 0 ]] && failed=$((failed + 1)); fi
}

tier_lint() {
  local rc=0
  ruff check . || rc=1
  ruff format --check . || rc=1
  yamllint -s . || rc=1
  # molecule (through ansible-compat) installs the collection under test into the user's
  # collections path; a copy left there by an earlier run would shadow this checkout for
  # ansible-lint (e.g. "could not resolve the module_defaults group meshops.istio.k8s").
  local stale="$HOME/.ansible/collections/ansible_collections/meshops/istio"
  if [[ -f "$stale/MANIFEST.json" ]]; then
    echo "lint: removing the copy of meshops.istio an earlier molecule run installed in $stale" >&2
    rm -rf "$stale"
  fi
  ansible-lint --offline || rc=1
  record_gate lint $rc
}

tier_sanity() {
  # ansible-test wants the collection at ansible_collections/<ns>/<name> inside a git tree;
  # copy there what git tracks (plus untracked, unignored files), less the lab tooling that
  # galaxy.yml's build_ignore keeps out of the collection too.
  local tree
  tree="$(mktemp -d)"
  mkdir -p "$tree/ansible_collections/meshops/istio"
  git ls-files -co --exclude-standard | grep -Ev '^(collections|lab|benchmarks|scripts|\.ci)/' |
    tar -cf - -T - | tar -xf - -C "$tree/ansible_collections/meshops/istio"
  (cd "$tree/ansible_collections/meshops/istio" && git init -q && git add -A &&
    ansible-test sanity --python 3.11 --color no)
  local rc=$?
  record_gate sanity $rc
  # Every other Python the nodes may run: the version-specific tests (compile, import).
  local pythons version
  pythons="$(node_python_path)"
  for version in "${NODE_PYTHONS[@]}"; do
    [[ "$version" == 3.11 ]] && continue
    if [[ ! -e "$pythons/python$version" ]]; then
      echo "sanity: python$version not found (install it, e.g. pyenv install $version): not run" >&2
      record_gate "sanity:python$version (not found)" 1
      continue
    fi
    (cd "$tree/ansible_collections/meshops/istio" && PATH="$pythons:$PATH" \
      ansible-test sanity --test compile --test import --python "$version" --color no)
    record_gate "sanity:python$version" $?
  done
  rm -rf "$tree" "$pythons"
}

tier_build() {
  local tmp rc=0
  tmp="$(mktemp -d)"
  # Install the tarball where only it can be found (no ansible.cfg, no checkout symlink), then
  # list its content the way a user would see it.
  ansible-galaxy collection build --output-path "$tmp" --force . &&
    (cd "$tmp" && env -u ANSIBLE_CONFIG ANSIBLE_COLLECTIONS_PATH="$tmp/installed" \
      ansible-galaxy collection install --offline --no-deps --force -p "$tmp/installed" "$tmp"/meshops-istio-*.tar.gz &&
      env -u ANSIBLE_CONFIG ANSIBLE_COLLECTIONS_PATH="$tmp/installed" ansible-doc -l meshops.istio) | tee "$tmp/doc-list" &&
    grep -q '^meshops\.istio\.' "$tmp/doc-list" || rc=1
  rm -rf "$tmp"
  record_gate build $rc
}

tier_unit() {
  run_pytest unit tests/unit
  # The node-side unit tests under the oldest and the newest Python a node may run.
  local version python
  for version in "${NODE_UNIT_PYTHONS[@]}"; do
    if ! python="$(node_unit_venv "$version")"; then
      echo "unit: no Python $version virtualenv (python$version not found, or pip failed): not run" >&2
      record_gate "unit:python$version (not run)" 1
      continue
    fi
    run_pytest_with "$python" "unit:python$version" "${NODE_UNIT_TESTS[@]}"
  done
}

# The slowest tests are listed at the end: the run must stay well inside CI's 90 minutes.
tier_integration() { run_pytest integration tests/integration --durations=25; }

# Two scenarios at a time: each has containers, a network and a lab of its own (the prefixes in
# its molecule.yml), and most of a scenario's time is spent waiting on containers and the API
# server, so the 2-core CI machine runs two of them in little more than the time of one.
MOLECULE_LANES="${MESHOPS_MOLECULE_LANES:-2}"

tier_molecule() {
  local scenario scenarios=() logs
  # site (the longest: a lab of real nodes, the whole tutorial) starts first, so that the other
  # scenarios run beside it rather than after it.
  [[ -f molecule/site/molecule.yml ]] && scenarios+=(site)
  for scenario in molecule/*/; do
    scenario="$(basename "$scenario")"
    [[ -f "molecule/$scenario/molecule.yml" && "$scenario" != site ]] && scenarios+=("$scenario")
  done
  logs="$(mktemp -d)"
  for scenario in "${scenarios[@]}"; do
    while (($(jobs -rp | wc -l) >= MOLECULE_LANES)); do wait -n; done
    (
      start=$SECONDS
      molecule test -s "$scenario" >"$logs/$scenario.log" 2>&1
      echo "$? $((SECONDS - start))" >"$logs/$scenario.rc"
    ) &
  done
  wait
  local rc seconds
  for scenario in "${scenarios[@]}"; do
    cat "$logs/$scenario.log"
    read -r rc seconds <"$logs/$scenario.rc" || { rc=1 seconds=?; }
    echo "---------------- molecule $scenario took $seconds s"
    record_gate "molecule:$scenario" "$rc"
  done
  rm -rf "$logs"
}

tier_benchmarks() {
  local bench rc=0
  for bench in benchmarks/*.py; do
    [[ -e "$bench" ]] || continue
    echo "== $bench --quick"
    local start=$SECONDS
    python "$bench" --quick || rc=1
    echo "-- $bench took $((SECONDS - start)) s"
  done
  record_gate benchmarks $rc
}

for tier in "${tiers[@]}"; do
  case "$tier" in
    lint | sanity | build | unit | integration | molecule | benchmarks)
      echo "================ tier: $tier ================"
      start=$SECONDS
      "tier_$tier"
      echo "---------------- tier $tier took $((SECONDS - start)) s" ;;
    *) echo "test.sh: unknown tier '$tier' (choose: ${ALL_TIERS[*]})" >&2; exit 2 ;;
  esac
done

echo
echo "================ results ================"
for key in "${!tier_status[@]}"; do printf '%-28s %s\n' "$key" "${tier_status[$key]}"; done | sort
if ((passed == 0)); then echo "no test ran" >&2; failed=$((failed + 1)); fi
echo "summary: $passed passed, $failed failed, $skipped skipped"
((failed == 0))
