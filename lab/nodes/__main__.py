"""Start and stop the lab's node containers.

    python -m lab.nodes up [--nodes cp1,w1,w2,ws1]   create the network and the nodes (no-op if up)
    python -m lab.nodes down                         remove exactly the nodes and network it made
    python -m lab.nodes status                       print the nodes and their addresses as JSON

Containers are named <prefix><node> (default meshops-lab-cp1, ...) so that several labs (the
main job's, the end-to-end molecule scenario's) can stand side by side; --lab selects one.
"""

import argparse
import json
import sys

from lab.nodes.containers import DEFAULT_NODES, LABS, Lab, LabNodesError, down, status, up


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lab.nodes", description=__doc__.splitlines()[0])
    parser.add_argument("--lab", default="meshops-lab", help=f"which lab ({', '.join(LABS)})")
    sub = parser.add_subparsers(dest="command", required=True)
    up_parser = sub.add_parser("up")
    up_parser.add_argument("--nodes", default=",".join(DEFAULT_NODES))
    sub.add_parser("down")
    sub.add_parser("status")
    args = parser.parse_args(argv)
    try:
        lab = Lab(args.lab)
        if args.command == "up":
            print(json.dumps(up(lab, [n for n in args.nodes.split(",") if n]), indent=2))
        elif args.command == "down":
            print(json.dumps({"removed": down(lab)}))
        else:
            print(json.dumps(status(lab), indent=2))
    except LabNodesError as error:
        print(f"lab.nodes: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
