"""`edgekit targets`: list targets and their formats."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any) -> None:
    targets = commands.add_parser("targets", help="list targets and their formats")
    targets.set_defaults(handler=_targets)


def _targets(args: argparse.Namespace) -> int:
    from edgekit.targets import all_targets

    for target in all_targets().values():
        print(f"{target.name:8} {', '.join(target.formats):28} device={target.device:14} "
              f"quant={target.quant}  {target.description}")
    return 0
