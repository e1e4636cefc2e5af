"""`edgekit devices`: list the phone profiles in targets/devices/, or print a commented
template for the user's own (`--template > my-phone.toml`)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(commands: Any) -> None:
    devices = commands.add_parser("devices", help="list phone profiles (latency projection)")
    devices.add_argument("--json", action="store_true", help="print JSON instead of a table")
    devices.add_argument("--template", action="store_true",
                         help="print a commented profile to fill in for your own phone: "
                              "edgekit devices --template > my-phone.toml, then "
                              "edgekit export --device my-phone.toml")
    devices.set_defaults(handler=_devices)


def _devices(args: argparse.Namespace) -> int:
    from edgekit.devices import all_devices, device_template

    if args.template:
        print(device_template(), end="")
        return 0
    rows: list[dict[str, Any]] = []
    for device in all_devices().values():
        npu = device.npu.tops if device.npu and device.npu.tops else None
        rows.append({"device": device.key, "name": device.name, "os": device.os,
                     "soc": device.soc, "tier": device.tier, "big_cores": device.big_cores,
                     "threads": device.threads,
                     "cpu_gflops": round(device.cpu_gflops(), 1),
                     "bandwidth_gbps": device.memory_bandwidth_gbps, "ram_gib": device.ram_gib,
                     "app_memory_budget_mib": device.app_memory_budget_mib, "npu_tops": npu,
                     "sources": len(device.sources), "estimates": len(device.estimates)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'DEVICE':14} {'OS':8} {'TIER':5} {'SOC':40} {'BIG':>3} {'THR':>3} "
          f"{'GB/s':>6} {'RAM':>6} {'NPU TOPS':>8}")
    for row in rows:
        tops = f"{row['npu_tops']:.1f}" if row["npu_tops"] else "-"
        print(f"{row['device']:14} {row['os']:8} {row['tier']:5} {row['soc'][:40]:40} "
              f"{row['big_cores']:>3} {row['threads']:>3} {row['bandwidth_gbps']:>6.1f} "
              f"{row['ram_gib']:>4.0f}GB {tops:>8}")
    print("Sources and estimates of every number: targets/devices/<device>.toml "
          "([sources], estimates). Your own phone: edgekit devices --template > my-phone.toml")
    return 0
