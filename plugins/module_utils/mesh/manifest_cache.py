# Copyright: meshops.istio developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The manifests ``istioctl manifest generate`` printed, kept for the next run with the same input.

Rendering the demo profile takes istioctl about half a second, as long as applying it again
when nothing changed. Its output depends only on the binary and what it is given, so a re-run
with the same binary (path, inode, size, modification time), the same profile, values, overlays
and revision, the same istioctl configuration file and ``ISTIOCTL_*`` environment reads the
manifest it stored instead. Anything else is a different key and runs istioctl.

Entries are files named by the key's sha256 in a private directory (0700, files 0600), written
atomically; the newest ``KEEP`` are kept. A corrupt or unreadable entry is a miss, never an error.

No Ansible imports.
"""

import contextlib
import hashlib
import json
import os
import tempfile

KEEP = 8
# Part of every key: a change of what goes into a key (or of the entry format) makes old
# entries misses instead of wrong hits.
KEY_FORMAT = 1


def _file_digest(path):
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return None


def _istioctl_config_file():
    return os.environ.get("ISTIOCONFIG") or os.path.expanduser("~/.istioctl/config.yaml")


def cache_key(istioctl, inputs):
    """The key for ``istioctl`` run with ``inputs`` (a JSON-serialisable mapping of everything
    given to it; files by path, whose contents go into the key here)."""
    stat = os.stat(istioctl)
    files = {path: _file_digest(path) for path in [*inputs.get("files", []), _istioctl_config_file()] if path}
    material = {
        "format": KEY_FORMAT,
        "istioctl": [os.path.realpath(istioctl), stat.st_ino, stat.st_size, stat.st_mtime_ns],
        "inputs": inputs,
        "files": files,
        "environment": {name: value for name, value in os.environ.items() if name.startswith("ISTIOCTL_")},
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode("utf-8")).hexdigest()


class ManifestCache:
    def __init__(self, directory):
        self.directory = os.path.expanduser(directory)

    def _path(self, key):
        return os.path.join(self.directory, key + ".yaml")

    def get(self, key):
        """The stored manifest, or None."""
        try:
            with open(self._path(key), encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError):
            return None
        if not text:
            return None
        with contextlib.suppress(OSError):
            os.utime(self._path(key))  # the newest are kept: a use counts
        return text

    def put(self, key, text):
        """Store ``text`` under ``key``; a directory that cannot be written is skipped silently
        (the cache only saves time)."""
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            descriptor, temporary = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
            try:
                with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                    handle.write(text)
                os.replace(temporary, self._path(key))
            except OSError:
                os.unlink(temporary)
                raise
            self._prune()
        except OSError:
            return False
        return True

    def _prune(self):
        entries = [os.path.join(self.directory, name) for name in os.listdir(self.directory) if name.endswith(".yaml")]
        entries.sort(key=lambda path: os.stat(path).st_mtime_ns, reverse=True)
        for path in entries[KEEP:]:
            os.unlink(path)
