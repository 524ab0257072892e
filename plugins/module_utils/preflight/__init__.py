# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Node preflight checks for meshops.istio (plain Python, no Ansible imports)."""
