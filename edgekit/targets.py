"""Targets are data: targets/<name>.toml names formats, compression, tolerances and device."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import ConfigError
from edgekit.tomlfile import read_toml

FORMATS = ("executorch", "onnx", "ort", "coreml")
_TARGET_KEYS = {"description", "formats", "device", "compression", "parity"}
_TOLERANCE_KEYS = {"max_rel", "cosine_min", "top1_min"}


@dataclass(frozen=True)
class Tolerance:
    """Parity thresholds for one quantization level; None means not checked."""

    max_rel: float | None = None
    cosine_min: float | None = None
    top1_min: float | None = None


@dataclass(frozen=True)
class Target:
    """One deployment target (ios, android, web)."""

    name: str
    description: str
    formats: tuple[str, ...]
    device: str
    quant: str
    prune: str
    parity: dict[str, Tolerance]  # by quant; "<quant>.<format>" overrides for one format
    source: Path

    def tolerance(self, quant: str, fmt: str | None = None) -> Tolerance:
        """Parity thresholds for artifacts quantized with `quant` (in format `fmt`, whose own
        [parity.<quant>.<format>] table wins, e.g. Core ML's fp16 compute)."""
        if fmt is not None and f"{quant}.{fmt}" in self.parity:
            return self.parity[f"{quant}.{fmt}"]
        if quant not in self.parity:
            raise ConfigError(f"{self.source}: no [parity.{quant}] tolerances for quant '{quant}'")
        return self.parity[quant]


def targets_dir() -> Path:
    """The folder of target files: inside the wheel, or the source checkout's targets/."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "_targets", package.parent / "targets"):
        if candidate.is_dir():
            return candidate
    raise ConfigError(f"target files not found beside {package}; reinstall edgekit")


@functools.cache
def all_targets() -> dict[str, Target]:
    """Every target file, by name."""
    return {p.stem: _read_target(p) for p in sorted(targets_dir().glob("*.toml"))}


def get_target(name: str) -> Target:
    """The target called `name`; ConfigError naming the known ones otherwise."""
    targets = all_targets()
    if name not in targets:
        raise ConfigError(f"unknown target '{name}' (known: {', '.join(targets)}, all)")
    return targets[name]


def resolve_targets(names: tuple[str, ...]) -> list[Target]:
    """Targets for names, where 'all' means every target."""
    if "all" in names:
        return list(all_targets().values())
    return [get_target(n) for n in dict.fromkeys(names)]


def _read_target(path: Path) -> Target:
    data = read_toml(path)
    _reject_unknown(data, _TARGET_KEYS, path, "")
    formats = tuple(data.get("formats", ()))
    bad = [f for f in formats if f not in FORMATS]
    if not formats or bad:
        raise ConfigError(f"{path}: 'formats' must list some of {', '.join(FORMATS)}, got {bad}")
    if "ort" in formats and "onnx" not in formats:
        raise ConfigError(f"{path}: format 'ort' is converted from 'onnx'; list 'onnx' too")
    compression = data.get("compression", {})
    _reject_unknown(compression, {"quant", "prune"}, path, "compression.")
    parity = {}
    for quant, values in data.get("parity", {}).items():
        overrides = {k: v for k, v in values.items() if k in FORMATS}
        flat = {k: v for k, v in values.items() if k not in FORMATS}
        _reject_unknown(flat, _TOLERANCE_KEYS, path, f"parity.{quant}.")
        parity[quant] = Tolerance(**{k: float(v) for k, v in flat.items()})
        for fmt, table in overrides.items():
            _reject_unknown(table, _TOLERANCE_KEYS, path, f"parity.{quant}.{fmt}.")
            parity[f"{quant}.{fmt}"] = Tolerance(**{k: float(v) for k, v in table.items()})
    return Target(
        name=path.stem,
        description=str(data.get("description", "")),
        formats=formats,
        device=str(data.get("device", "")),
        quant=str(compression.get("quant", "none")),
        prune=str(compression.get("prune", "")),
        parity=parity,
        source=path,
    )


def _reject_unknown(data: dict[str, Any], known: set[str], path: Path, prefix: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown key '{prefix}{unknown[0]}'")
