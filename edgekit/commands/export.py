"""`edgekit export`: the whole trip for one or more targets."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edgekit.config import toml_string


def register(commands: Any) -> None:
    export = commands.add_parser("export", help="export a student for one or more targets")
    export.add_argument("--model", help="built-in name (smollm2-135m), HF folder, .gguf or "
                                        ".pt2 (default: smollm2-135m)")
    export.add_argument("--target", action="append",
                        help="ios, android, web or all; repeat or comma-separate (default: ios)")
    export.add_argument("--out", help="output folder (default: edgekit-out/<model-name>)")
    export.add_argument("--task", help="text-generation, feature-extraction, fill-mask, "
                                       "text-classification or image-classification")
    export.add_argument("--quant", help="none, int8 or int4 (default: the target's recipe)")
    export.add_argument("--prune", help="pruning spec (default: the target's recipe)")
    export.add_argument("--calib", help="calibration data for GPTQ, mixed precision and pruning: "
                                        ".txt lines, .jsonl with a \"text\" field, an image "
                                        "folder or .npz (default: edgekit's corpus for LMs)")
    export.add_argument("--inputs", help=".npz of real inputs for parity, keyed by input name")
    export.add_argument("--config", type=Path, help="edgekit.toml")
    export.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. model.seq_len=128")
    export.add_argument("--force", action="store_true", help="replace a non-empty --out")
    add_device_flag(export)
    add_decode_flags(export)
    export.add_argument("--max-seq-len", type=int, metavar="N",
                        help="KV cache length of decode artifacts (default 512, or the "
                             "student's max_position_embeddings when smaller)")
    export.set_defaults(handler=_export)


def add_device_flag(parser: argparse.ArgumentParser) -> None:
    """`--device NAME|PATH.toml` (repeatable): sets export.devices."""
    parser.add_argument("--device", action="append", metavar="NAME|PATH.toml",
                        help="phone to measure under and project for, replacing the targets' "
                             "default devices: a built-in profile (`edgekit devices`) or your "
                             "own .toml (`edgekit devices --template`); repeatable")


def add_decode_flags(parser: argparse.ArgumentParser) -> None:
    """`--forward-only` / `--decode`: set export.decode (unset: decode-ready for
    text-generation students)."""
    decode = parser.add_mutually_exclusive_group()
    decode.add_argument("--forward-only", action="store_true",
                        help="text-generation students: skip the decode-ready artifacts "
                             "(KV cache, tokenizer, generation parity) exported by default")
    decode.add_argument("--decode", action="store_true",
                        help="require the decode-ready artifacts: an error for a student that "
                             "is not a decoder LM (text-generation students get them anyway)")


def device_and_decode_overrides(args: argparse.Namespace) -> list[str]:
    """The config overrides of --device, --forward-only and --decode."""
    sets = []
    if args.device:
        sets.append("export.devices=[" + ", ".join(toml_string(d) for d in args.device) + "]")
    if args.forward_only:
        sets.append("export.decode=false")
    if args.decode:
        sets.append("export.decode=true")
    return sets


def _export_overrides(args: argparse.Namespace) -> list[str]:
    sets: list[str] = []
    if args.model:
        sets.append(f"model.path={toml_string(args.model)}")
    if args.task:
        sets.append(f"model.task={toml_string(args.task)}")
    if args.target:
        names = [n.strip() for item in args.target for n in item.split(",") if n.strip()]
        sets.append("export.targets=[" + ", ".join(toml_string(n) for n in names) + "]")
    if args.out:
        sets.append(f"export.out={toml_string(args.out)}")
    if args.force:
        sets.append("export.force=true")
    sets += device_and_decode_overrides(args)
    if args.max_seq_len is not None:
        sets.append(f"export.max_seq_len={args.max_seq_len}")
    if args.quant:
        sets.append(f"compress.quant={toml_string(args.quant)}")
    if args.prune is not None:
        sets.append(f"compress.prune={toml_string(args.prune)}")
    if args.calib:
        sets.append(f"compress.calib={toml_string(args.calib)}")
    if args.inputs:
        sets.append(f"validate.inputs={toml_string(args.inputs)}")
    return sets + list(args.set)


def _export(args: argparse.Namespace) -> int:
    from edgekit.config import load_config
    from edgekit.pipeline import exit_code, run

    config = load_config(args.config, _export_overrides(args))
    report = run(config)
    _print_summary(report)
    return exit_code(report)


def _print_summary(report: dict[str, Any]) -> None:
    from edgekit.report.markdown import HEADER, artifact_rows

    rows = [HEADER, *artifact_rows(report)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for item in report["artifacts"]:
        if item["parity"]["verdict"] != "pass":
            print(f"{item['target']}/{item['format']}: {item['parity']['verdict']}: "
                  f"{item['parity']['reason']}")
    for item in report.get("decode", []):
        _print_decode(item)
    summary = report["summary"]
    print(f"{summary['pass']} passed, {summary['fail']} failed, {summary['not_run']} not run; "
          f"report: {Path(report['out']) / 'report.json'}")




def _print_decode(item: dict[str, Any]) -> None:
    parity = item["parity"]
    if "path" not in item:
        print(f"decode {item['target']}/{item['format']}: {parity['verdict']}: "
              f"{parity['reason']}")
        return
    measured = item["latency"]["measured"]
    against = parity.get("against", {}).get(parity.get("expected_reference", ""), {})
    tokens = (f"{round(against['agreement'] * against['compared'])}/{against['compared']} "
              f"tokens as the eager {parity['expected_reference']} student"
              if against else parity.get("reason", ""))
    speed = (f", decode {measured['decode_tok_s']} tok/s measured on host"
             if "decode_tok_s" in measured else "")
    print(f"decode {item['path']} ({item['bytes'] / 2**20:.1f} MiB, max_seq_len "
          f"{item['max_seq_len']}): generation {parity['verdict']}, {tokens}{speed}")
