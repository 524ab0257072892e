"""Shared helpers of the iptables unit tests: data files and step notation."""

import os

import yaml

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
DUMPS = os.path.join(DATA, "dumps")
FORMS = ("rules", "nft.save", "legacy.save")


def load_yaml(name):
    with open(os.path.join(DATA, name), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def dump_text(name, form):
    with open(os.path.join(DUMPS, f"{name}.{form}"), encoding="utf-8") as handle:
        return handle.read()


def step_names(steps):
    """Steps in the compact notation of the data files: 'nat ISTIO_OUTPUT 9' / 'nat OUTPUT policy'."""
    return [
        f"{s['table']} {s['chain']} {s['rule_number'] if s['rule_number'] is not None else 'policy'}" for s in steps
    ]
