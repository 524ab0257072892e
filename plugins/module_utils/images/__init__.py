# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Container image archives (docker-archive and OCI layout tarballs): read, validate, compare with
what a node's containerd holds, import what is missing."""
