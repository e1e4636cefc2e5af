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


@dataclass(frozen=True)
class ExportConfig:
    """Which targets to build and where the artifacts go."""

    targets: tuple[str, ...] = ("ios",)
    out: str | None = None  # default: edgekit-out/<model-name>
    force: bool = False  # replace a non-empty output folder


@dataclass(frozen=True)
class ValidateConfig:
    """Parity inputs."""

    inputs: str | None = None  # .npz of real inputs keyed by input name
    samples: int = 2  # in-distribution samples when no inputs are given
    seed: int = 0


@dataclass(frozen=True)
class Config:
    """The whole run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    compress: CompressConfig = field(default_factory=CompressConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    validate: ValidateConfig = field(default_factory=ValidateConfig)


_POSITIVE = {"model.seq_len", "validate.samples"}

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
        try:
            data = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    config = _build(Config, data, where, prefix="")
    return apply_overrides(config, overrides)


def apply_overrides(config: Config, overrides: typing.Sequence[str]) -> Config:
    """Return `config` with `section.key=value` strings applied."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected section.key=value")
        if key in _SECTION_SHORTHAND:
            key = f"{key}.{_SECTION_SHORTHAND[key]}"
        section, _, name = key.partition(".")
        patch = {section: {name: _parse_value(raw)}} if name else {section: _parse_value(raw)}
        config = merge(config, patch, where=f"--set {item}")
    return config


def merge(config: Config, patch: dict[str, Any], where: str) -> Config:
    """Return `config` with the nested dict `patch` applied (validated like a file)."""
    current = dataclasses.asdict(config)
    for section, values in _expand_shorthand(patch).items():
        if isinstance(values, dict) and isinstance(current.get(section), dict):
            current[section].update(values)
        else:
            current[section] = values
    return _build(Config, current, where, prefix="")


def _expand_shorthand(data: dict[str, Any]) -> dict[str, Any]:
    out = dict(data)
    for section, main_key in _SECTION_SHORTHAND.items():
        if section in out and not isinstance(out[section], dict):
            out[section] = {main_key: out[section]}
    return out


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
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, where, prefix=f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, hint, f"{prefix}{name}", where)
    return cls(**kwargs)


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
            return value
        raise ConfigError(f"{where}: '{key}' must be an integer, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        return str(value) if isinstance(value, int | float) else _type_error(key, value, where)
    return value


def _type_error(key: str, value: Any, where: str) -> Any:
    raise ConfigError(f"{where}: '{key}' must be a string, got {value!r}")
