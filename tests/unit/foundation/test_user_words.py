"""What a user reads speaks the user's words: "the tutorial" (docs/from-the-tutorial.md) and its
chapters, never the internal shorthand "the seed" or "seed 6.7"."""

import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[3]
USER_FACING = [
    "README.md",
    "docs/*.md",
    "roles/*/README.md",
    "roles/*/defaults/*.yml",
    "roles/*/meta/argument_specs.yml",
    "roles/*/tasks/*.yml",
    "roles/*/templates/*",
    "playbooks/*.yml",
    "inventories/example/**/*.yml",
    "plugins/**/*.py",
]
SHORTHAND = re.compile(r"\b(the seed\b|seed's|seed \d)", re.IGNORECASE)


def test_no_internal_shorthand_where_users_read():
    found = []
    for pattern in USER_FACING:
        for path in sorted(REPO.glob(pattern)):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if SHORTHAND.search(line):
                    found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert found == []


def test_the_pattern_finds_the_shorthand():
    assert all(SHORTHAND.search(text) for text in ("as in seed 6.7", "the seed's jiuxi.com", "Chapter 0 of the seed"))
    assert not SHORTHAND.search("random.seed(4) and the tutorial's jiuxi.com")
