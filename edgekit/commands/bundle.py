"""`edgekit bundle`: the artifacts of one target, ready for a sample app."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(commands: Any) -> None:
    bundle = commands.add_parser(
        "bundle", help="bundle an export for an app: artifacts, manifest.json, golden vectors")
    bundle.add_argument("out", type=Path, metavar="OUT_DIR",
                        help="the --out folder of edgekit export")
    bundle.add_argument("--app", required=True, help="ios, android or web")
    bundle.add_argument("--dest", type=Path, required=True, help="bundle folder to write")
    bundle.add_argument("--samples", type=int, default=2, help="golden input sets (default 2)")
    bundle.add_argument("--force", action="store_true", help="replace a non-empty --dest")
    bundle.set_defaults(handler=_bundle)


def _bundle(args: argparse.Namespace) -> int:
    from edgekit.bundle import make_bundle
    from edgekit.errors import ConfigError

    if args.samples < 1:
        raise ConfigError(f"--samples {args.samples}: need at least 1 golden input set")
    manifest = make_bundle(args.out, args.app, args.dest, force=args.force,
                           samples=args.samples)
    for item in manifest["artifacts"]:
        host = item["self_test"]["host"]
        errors = host["metrics"]
        shown = (f"max_abs {errors['max_abs']:.3g}, max_rel {errors['max_rel']:.3g}"
                 if "max_abs" in errors else host["reason"])
        print(f"{item['path']}: self-test on host {host['verdict']} ({host['runtime']}): {shown}")
    summary = manifest["summary"]
    print(f"bundle for {args.app}: {args.dest / 'manifest.json'} ({summary['pass']} passed, "
          f"{summary['fail']} failed, {summary['not_run']} not run)")
    return 1 if summary["fail"] else 0
