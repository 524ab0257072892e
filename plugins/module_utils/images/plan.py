# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compare the images an archive holds with what a node has, and say what an import changes."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Plan:
    wanted: dict  # name -> image ID the archive holds
    before: dict  # name -> image ID the node has (None: no such image)
    missing: list = field(default_factory=list)  # names absent or holding another image

    @property
    def changed(self):
        return bool(self.missing)

    def diff(self, where="containerd"):
        """Ansible's diff: one ``name: image ID`` line per name of the archive."""
        return {
            "before_header": f"{where} (before)",
            "after_header": f"{where} (after)",
            "before": "".join(f"{name}: {self.before.get(name) or '(absent)'}\n" for name in sorted(self.wanted)),
            "after": "".join(f"{name}: {self.wanted[name]}\n" for name in sorted(self.wanted)),
        }

    def images(self):
        return [
            {
                "name": name,
                "image_id": self.wanted[name],
                "before": self.before.get(name),
                "changed": name in self.missing,
            }
            for name in sorted(self.wanted)
        ]


def plan(wanted, before):
    """``wanted`` and ``before`` map image names to image IDs (``before`` holds None for a name the
    node lacks)."""
    missing = sorted(name for name, image_id in wanted.items() if before.get(name) != image_id)
    return Plan(wanted=dict(wanted), before=dict(before), missing=missing)
