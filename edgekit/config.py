"""Typed, frozen configuration: one sub-config per stage, unknown keys are errors.

Sources, later ones winning: defaults, an edgekit.toml file, command-line flags, and
`--set section.key=value` overrides. `--set model=PATH` is short for `--set model.path=PATH`.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import ConfigError
from edgekit.targets import FORMATS
from edgekit.tomlfile import read_toml

DEFAULT_MODEL = "smollm2-135m"


@dataclass(frozen=True)
class ModelConfig:
    """Which student to load and what it does."""

    path: str = DEFAULT_MODEL  # built-in name, HF folder, .gguf, .pt2, or hub id
    task: str | None = None  # inferred from the model's config when unset
    seq_len: int = 64  # tokens per example sequence for text models


@dataclass(frozen=True)
class CompressConfig:
    """Compression recipe; unset fields take the target's default."""

    quant: str | None = None  # none | int8 | int4
    prune: str | None = None
    calib: str | None = None  # calibration data: .txt, .jsonl, image folder or .npz


@dataclass(frozen=True)
class QuantizeConfig:
    """`[quantize]`: how the plan is computed; unset fields take the scheme's defaults."""

    method: str | None = None  # rtn | search | gptq (default search)
    group_size: int | None = None  # 32 (int4 default), 64, 128, or 0 for per channel
    symmetric: bool | None = None  # false: unsigned codes with zero points
    embeddings: bool | None = None  # quantize embedding tables too (default true)
    keep_float: tuple[str, ...] = ()  # module names or name suffixes left in float
    mixed_precision: bool | None = None  # keep sensitive layers at int8 (int4 default true)
    error_budget: float | None = None  # stop when the 4-bit error is this fraction (0.5)
    max_extra_bytes: float | None = None  # int8 layers may add this fraction of bytes (0.15)
    onnx_int8_activations: bool | None = None  # ONNX MatMulNBits accuracy_level 4 (false)
    calib_samples: int = 16  # calibration input sets used


@dataclass(frozen=True)
class PruneConfig:
    """`[prune]`: how pruning scores what to remove."""

    importance: str = "activation"  # activation (calibration data) | magnitude (weights only)


@dataclass(frozen=True)
class ExportConfig:
    """Which targets to build and where the artifacts go."""

    targets: tuple[str, ...] = ("ios",)
    # phones latency is measured under and projected for, replacing each target's default
    # device: built-in names (pixel-8) or paths of the user's own profiles (my-phone.toml)
    devices: tuple[str, ...] = ()
    out: str | None = None  # default: edgekit-out/<model-name>
    force: bool = False  # replace a non-empty output folder
    # decode-ready (KV cache) artifacts too: None (default) for text-generation students,
    # false: forward programs only, true: required (an error for a student that is not one)
    decode: bool | None = None
    # decode artifacts' KV cache length (prompt + generated tokens); default 512, or the
    # student's max_position_embeddings when that is smaller
    max_seq_len: int | None = None


@dataclass(frozen=True)
class ValidateConfig:
    """Parity inputs."""

    inputs: str | None = None  # .npz of real inputs keyed by input name
    samples: int = 2  # in-distribution samples when no inputs are given
    seed: int = 0


@dataclass(frozen=True)
class ParityBudget:
    """Limits on an artifact's parity metrics against the fp32 student; None: not checked."""

    max_rel: float | None = None  # max_rel at most this
    max_abs: float | None = None  # max_abs at most this
    cosine_min: float | None = None  # cosine_min at least this
    sqnr_db_min: float | None = None  # sqnr_db at least this
    top1_min: float | None = None  # top1_agreement at least this (logits only)


@dataclass(frozen=True)
class SizeBudget:
    """Limits on an artifact's size on disk."""

    max_bytes: int | None = None
    max_mib: float | None = None


@dataclass(frozen=True)
class LatencyBudget:
    """Limits on latency, in ms: measured on host under the device's limits, or projected."""

    measured_p50_ms: float | None = None
    measured_p90_ms: float | None = None
    load_ms: float | None = None  # measured load time
    projected_mid_ms: float | None = None
    projected_high_ms: float | None = None  # the top of the estimated range


@dataclass(frozen=True)
class MemoryBudget:
    """Limits on the peak memory measured while running an artifact."""

    peak_rss_mib: float | None = None
    # true: fail when the measured peak exceeds the device profile's app memory budget
    within_device_budget: bool | None = None


@dataclass(frozen=True)
class FormatBudget:
    """`[budgets.formats.<format>]`: parity and size limits for one format only."""

    parity: ParityBudget = field(default_factory=ParityBudget)
    size: SizeBudget = field(default_factory=SizeBudget)


@dataclass(frozen=True)
class DeviceBudget:
    """`[budgets.devices.<device>]`: latency and memory limits for one device only."""

    latency: LatencyBudget = field(default_factory=LatencyBudget)
    memory: MemoryBudget = field(default_factory=MemoryBudget)


@dataclass(frozen=True)
class BudgetsConfig:
    """What `edgekit check` holds every artifact to; a key set per format or device wins."""

    parity: ParityBudget = field(default_factory=ParityBudget)
    size: SizeBudget = field(default_factory=SizeBudget)
    latency: LatencyBudget = field(default_factory=LatencyBudget)
    memory: MemoryBudget = field(default_factory=MemoryBudget)
    formats: dict[str, FormatBudget] = field(default_factory=dict,
                                             metadata={"keys": FORMATS})
    devices: dict[str, DeviceBudget] = field(default_factory=dict)
    fail_on_not_run: bool = False  # a check that could not run fails the build too


@dataclass(frozen=True)
class RegressionConfig:
    """`edgekit check --baseline`: how much worse than the baseline report is still fine."""

    baseline: str | None = None  # a previous report.json
    max_rel_growth: float = 0.10  # max_rel may grow by this fraction ...
    max_rel_slack: float = 1e-6  # ... plus this absolute amount
    cosine_drop: float = 1e-5  # cosine_min may drop by this much
    top1_drop: float = 0.0  # top1_agreement may drop by this much
    size_growth: float = 0.01  # bytes may grow by this fraction
    latency_growth: float = 0.20  # measured p50 and projected mid may grow by this fraction ...
    latency_slack_ms: float = 0.5  # ... plus this many ms (timer noise on tiny models)
    memory_growth: float = 0.20  # measured peak_rss_mib may grow by this fraction ...
    memory_slack_mib: float = 8.0  # ... plus this many MiB (allocator noise)


@dataclass(frozen=True)
class Config:
    """The whole run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    compress: CompressConfig = field(default_factory=CompressConfig)
    quantize: QuantizeConfig = field(default_factory=QuantizeConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    budgets: BudgetsConfig = field(default_factory=BudgetsConfig)
    regression: RegressionConfig = field(default_factory=RegressionConfig)


_POSITIVE = {"model.seq_len", "validate.samples", "export.max_seq_len"}

# Budget and regression values by field name (they repeat under formats and devices):
# (lowest, highest) allowed; sqnr_db_min may be any number.
_RANGES: dict[str, tuple[float, float]] = {
    **{name: (0.0, float("inf")) for name in (
        "max_rel", "max_abs", "max_bytes", "max_mib", "measured_p50_ms", "measured_p90_ms",
        "load_ms", "projected_mid_ms", "projected_high_ms", "peak_rss_mib", "max_rel_growth",
        "max_rel_slack", "cosine_drop", "top1_drop", "size_growth", "latency_growth",
        "latency_slack_ms", "memory_growth", "memory_slack_mib")},
    "cosine_min": (-1.0, 1.0),
    "top1_min": (0.0, 1.0),
    "error_budget": (0.0, 1.0),
    "max_extra_bytes": (0.0, float("inf")),
}
_RANGED_SECTIONS = ("budgets.", "regression.", "quantize.")

# `--set model=PATH` and `model = "PATH"` at the top of a file name a section's main key.
_SECTION_SHORTHAND = {"model": "path"}


def load_config(path: Path | None = None, overrides: typing.Sequence[str] = ()) -> Config:
    """Build a Config from an optional TOML file and `key=value` overrides.

    Args:
        path: an edgekit.toml file, or None for defaults only.
        overrides: strings `section.key=value`; the value is read as TOML, else as a string.

    Returns:
        The frozen Config.

    Raises:
        ConfigError: a missing or malformed file, an unknown key, or a value of the wrong type.
    """
    data: dict[str, Any] = {}
    where = "defaults"
    if path is not None:
        where = str(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        data = read_toml(path)
    config = _build(Config, data, where, prefix="")
    return apply_overrides(config, overrides)


def apply_overrides(config: Config, overrides: typing.Sequence[str]) -> Config:
    """Return `config` with `section.key=value` strings applied."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        parts = key.split(".")
        if not sep or not key or not all(parts):
            raise ConfigError(f"--set {item!r}: expected section.key=value")
        if key in _SECTION_SHORTHAND:
            parts = [key, _SECTION_SHORTHAND[key]]
        patch: Any = _parse_value(raw)
        for part in reversed(parts):  # a.b.c=v -> {a: {b: {c: v}}}
            patch = {part: patch}
        config = merge(config, patch, where=f"--set {item}")
    return config


def merge(config: Config, patch: dict[str, Any], where: str) -> Config:
    """Return `config` with the nested dict `patch` applied (validated like a file)."""
    current = dataclasses.asdict(config)
    _deep_update(current, _expand_shorthand(patch))
    return _build(Config, current, where, prefix="")


def _deep_update(base: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value


def _expand_shorthand(data: dict[str, Any]) -> dict[str, Any]:
    out = dict(data)
    for section, main_key in _SECTION_SHORTHAND.items():
        if section in out and not isinstance(out[section], dict):
            out[section] = {main_key: out[section]}
    return out


def toml_string(value: str) -> str:
    """`value` as a quoted TOML string, for building `section.key=value` overrides."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _parse_value(raw: str) -> Any:
    raw = raw.strip()
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _build(cls: type, data: Any, where: str, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: [{prefix.rstrip('.') or 'root'}] must be a table")
    data = _expand_shorthand(data) if cls is Config else data
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        known = ", ".join(sorted(names))
        raise ConfigError(f"{where}: unknown key '{prefix}{unknown[0]}' (known: {known})")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, where, prefix=f"{prefix}{name}.")
        elif typing.get_origin(hint) is dict:
            kwargs[name] = _build_table(typing.get_args(hint)[1], value, where,
                                        f"{prefix}{name}", fields[name].metadata.get("keys"))
        else:
            kwargs[name] = _coerce(value, hint, f"{prefix}{name}", where)
    return cls(**kwargs)


def _build_table(cls: type, data: Any, where: str, key: str,
                 known: tuple[str, ...] | None) -> dict[str, Any]:
    """A table of named sub-configs, e.g. [budgets.formats.onnx] or [budgets.devices.pixel-8]."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: [{key}] must be a table")
    unknown = sorted(set(data) - set(known)) if known is not None else []
    if unknown:
        raise ConfigError(f"{where}: unknown key '{key}.{unknown[0]}' "
                          f"(known: {', '.join(known or ())})")
    return {name: _build(cls, value, where, prefix=f"{key}.{name}.")
            for name, value in data.items()}


def _coerce(value: Any, hint: Any, key: str, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value == "" and type(None) in args):
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key, where)
    if origin is tuple:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise ConfigError(f"{where}: '{key}' must be a list, got {value!r}")
        return tuple(_coerce(v, args[0], key, where) for v in items)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: '{key}' must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1 and key in _POSITIVE:
                raise ConfigError(f"{where}: '{key}' must be at least 1, got {value}")
            return _in_range(value, key, where)
        raise ConfigError(f"{where}: '{key}' must be an integer, got {value!r}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return _in_range(float(value), key, where)
        raise ConfigError(f"{where}: '{key}' must be a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        return str(value) if isinstance(value, int | float) else _type_error(key, value, where)
    return value


def _in_range(value: float, key: str, where: str) -> Any:
    low, high = _RANGES.get(key.rsplit(".", 1)[-1], (float("-inf"), float("inf")))
    if key.startswith(_RANGED_SECTIONS) and not low <= value <= high:
        bound = f"between {low:g} and {high:g}" if high != float("inf") else f"at least {low:g}"
        raise ConfigError(f"{where}: '{key}' must be {bound}, got {value}")
    return value


def _type_error(key: str, value: Any, where: str) -> Any:
    raise ConfigError(f"{where}: '{key}' must be a string, got {value!r}")
