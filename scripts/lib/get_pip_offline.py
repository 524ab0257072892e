"""Replacement for the get-pip bootstrap script that ansible-test downloads from a host these
machines cannot reach. ansible-test runs it with pip's own arguments inside a fresh virtualenv;
we bring pip in with the interpreter's ensurepip and then let that pip install what was asked
(from the package index, which is reachable)."""

import subprocess
import sys

# ansible-test passes these to get-pip; plain "pip install" does not know them.
GET_PIP_ONLY_FLAGS = {"--no-setuptools", "--no-wheel"}

subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
arguments = [argument for argument in sys.argv[1:] if argument not in GET_PIP_ONLY_FLAGS]
subprocess.check_call([sys.executable, "-m", "pip", "install", *arguments])
