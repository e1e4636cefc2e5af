"""Device profiles: targets/devices/<name>.toml, or the user's own file.

One schema (pydantic, below) validates built-in and user profiles alike, and writes the
commented template of `edgekit devices --template`: each field's description says what it
is and its unit, `where` says where to find the number, the example is the placeholder.
"""

from __future__ import annotations

import functools
import os
import textwrap
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgekit.errors import ConfigError
from edgekit.targets import FORMATS, targets_dir
from edgekit.tomlfile import read_toml

COMPUTE_UNITS = ("cpu", "gpu", "npu")
# Every number in a device file must say where it came from: these fields need a `sources` key.
_SOURCED = ("cpu_clusters", "memory", "ram_gib", "gpu", "npu")
_TEMPLATE_NOTE = "PLACEHOLDER, replace with your phone's"


def _spec(description: str, where: str, example: Any, **constraints: Any) -> Any:
    """A profile field: what it is (with its unit), where to find it, a placeholder value."""
    return Field(description=description, examples=[example], json_schema_extra={"where": where},
                 **constraints)


def _optional(description: str, where: str, example: Any, **constraints: Any) -> Any:
    return Field(None, description=description, examples=[example],
                 json_schema_extra={"where": where}, **constraints)


class _ProfileTable(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class CpuCluster(_ProfileTable):
    """One cluster of identical CPU cores."""

    role: Annotated[Literal["prime", "performance", "efficiency"], _spec(
        "which cluster: prime, performance or efficiency",
        "the SoC vendor's spec page (core types and counts)", "performance")]
    cores: Annotated[int, _spec("number of cores in this cluster", "the SoC vendor's spec page",
                                4, ge=1)]
    ghz: Annotated[float, _spec("peak clock of these cores, in GHz (e.g. 2.4)",
                                "the SoC vendor's spec page, or a review that lists clocks",
                                2.4, gt=0)]
    microarchitecture: Annotated[str, _spec(
        "the core design, e.g. \"Arm Cortex-A78\"", "the SoC vendor's spec page",
        "Arm Cortex-A78")]
    fp32_flops_per_cycle: Annotated[int, _spec(
        "peak fp32 FLOPs per cycle of one core: SIMD FMA pipes x 4 lanes x 2 (2 pipes: 16, "
        "4 pipes: 32)", "Arm's Software Optimization Guide for the core (FP/ASIMD pipelines)",
        16, ge=1)]

    @property
    def gflops_per_core(self) -> float:
        return self.ghz * self.fp32_flops_per_cycle


class Memory(_ProfileTable):
    """The DRAM every weight streams from."""

    type: Annotated[str, _spec("memory type and speed, e.g. \"LPDDR5-6400\"",
                               "the SoC or phone spec page", "LPDDR4X-4266")]
    bus_bits: Annotated[int | None, _optional(
        "memory bus width in bits (64 on most phones)", "the SoC spec page", 64, ge=1)]
    bandwidth_gbps: Annotated[float, _spec(
        "peak DRAM bandwidth in GB/s: MT/s x bus_bits / 8 / 1000 (LPDDR5-6400 on 64 bits: "
        "51.2)", "the SoC spec page, or derived from type and bus_bits", 34.1, gt=0)]


class Accelerator(_ProfileTable):
    """A GPU or NPU; throughput is None where the vendor publishes none."""

    name: Annotated[str, _spec("the unit's name, e.g. \"Adreno 740\" or \"Hexagon NPU\"",
                               "the SoC vendor's spec page", "Mali-G78")]
    cores: Annotated[int | None, _optional("number of GPU or NPU cores",
                                           "the SoC vendor's spec page", 8, ge=1)]
    fp16_tflops: Annotated[float | None, _optional(
        "fp16 throughput in TFLOP/s (GPUs); leave out when the vendor publishes none",
        "the SoC vendor's spec page", 1.0, gt=0)]
    tops: Annotated[float | None, _optional(
        "throughput in TOPS as the vendor states it (NPUs); leave out when none is published",
        "the SoC vendor's spec page", 10.0, gt=0)]
    formats: Annotated[tuple[Literal[FORMATS], ...], Field(  # type: ignore[valid-type]
        (), strict=False, description="formats whose runtime uses this unit: [\"coreml\"] "
        "for an Apple GPU or Neural Engine, [] when no edgekit format does (Android GPUs and "
        "NPUs today)", examples=[[]], json_schema_extra={"where": ""})]


class DeviceFile(_ProfileTable):
    """The TOML file of one phone, as written: every key here, no other."""

    name: Annotated[str, _spec("the phone's name, e.g. \"Google Pixel 8\"",
                               "the box or the vendor's spec page", "My phone")]
    os: Annotated[str, _spec("operating system: \"Android\" or \"iOS\"",
                             "the vendor's spec page", "Android")]
    soc: Annotated[str, _spec("the system on chip, e.g. \"Qualcomm Snapdragon 8 Gen 2\"",
                              "the vendor's spec page", "My SoC")]
    tier: Annotated[Literal["high", "mid", "low"], _spec(
        "price and performance class: high, mid or low", "your judgement (flagship: high)",
        "mid")]
    released: Annotated[int | None, _optional("year of release", "the vendor's announcement",
                                              2024, ge=2000)]
    threads: Annotated[int, _spec(
        "CPU threads inference runs on: usually the cores outside the efficiency cluster; "
        "at most the total of cpu_clusters' cores", "cpu_clusters below (prime + performance "
        "cores)", 4, ge=1)]
    ram_gib: Annotated[float, _spec("RAM in GiB (the GB on the spec sheet), e.g. 8",
                                    "the phone's spec page", 8, gt=0)]
    app_memory_budget_mib: Annotated[float, _spec(
        "memory one app may use before the system kills it, in MiB; when unknown, half of "
        "RAM (ram_gib x 512) and say so in `estimates`", "not published by iOS or Android: "
        "an estimate", 4096, gt=0)]
    estimates: Annotated[tuple[str, ...], Field(
        (), strict=False, description="which numbers are estimates rather than published, "
        "one sentence each", examples=[[f"every number: {_TEMPLATE_NOTE}"]],
        json_schema_extra={"where": ""})]
    notes: Annotated[str | None, _optional("anything else a reader should know", "", "")]
    cpu_clusters: Annotated[tuple[CpuCluster, ...], Field(
        strict=False, min_length=1, description="one [[cpu_clusters]] table per group of "
        "identical cores", examples=[[
            {"role": "performance", "cores": 4, "ghz": 2.4, "microarchitecture":
             "Arm Cortex-A78", "fp32_flops_per_cycle": 16},
            {"role": "efficiency", "cores": 4, "ghz": 2.0, "microarchitecture":
             "Arm Cortex-A55", "fp32_flops_per_cycle": 8}]],
        json_schema_extra={"where": "the SoC vendor's spec page"})]
    memory: Annotated[Memory, Field(
        description="the DRAM", examples=[{"type": "LPDDR4X-4266", "bus_bits": 64,
                                           "bandwidth_gbps": 34.1}],
        json_schema_extra={"where": "the SoC spec page"})]
    gpu: Annotated[Accelerator | None, _optional(
        "the GPU", "the SoC vendor's spec page", {"name": "Mali-G78", "formats": []})]
    npu: Annotated[Accelerator | None, _optional(
        "the NPU (neural engine)", "the SoC vendor's spec page",
        {"name": "My NPU", "tops": 10.0, "formats": []})]
    sources: Annotated[dict[str, str], Field(
        default_factory=dict, description="where each number came from, a URL or document "
        "per field: cpu_clusters, memory and ram_gib, and gpu / npu when present (a sub-key "
        "such as \"cpu_clusters.ghz\" may have its own)", examples=[{
            "cpu_clusters": f"{_TEMPLATE_NOTE}: the URL of the SoC's spec page",
            "memory": f"{_TEMPLATE_NOTE}: the URL of the SoC's spec page",
            "ram_gib": f"{_TEMPLATE_NOTE}: the URL of the phone's spec page"}],
        json_schema_extra={"where": ""})]


@dataclass(frozen=True)
class DeviceProfile:
    """A phone: the public specifications that bound how fast a model can run on it."""

    key: str
    name: str
    os: str
    soc: str
    tier: str
    threads: int
    ram_gib: float
    app_memory_budget_mib: float
    cpu_clusters: tuple[CpuCluster, ...]
    memory_type: str
    memory_bandwidth_gbps: float
    gpu: Accelerator | None
    npu: Accelerator | None
    estimates: tuple[str, ...]
    sources: dict[str, str]
    source: Path

    @property
    def from_template(self) -> bool:
        """Whether the profile still holds `edgekit devices --template`'s placeholders."""
        return any(_TEMPLATE_NOTE in text for text in (*self.sources.values(), *self.estimates))

    @property
    def big_cores(self) -> int:
        """Cores outside the efficiency cluster."""
        return sum(c.cores for c in self.cpu_clusters if c.role != "efficiency")

    def cpu_gflops(self, threads: int | None = None) -> float:
        """Peak fp32 GFLOP/s of the `threads` fastest cores (default: the profile's threads)."""
        per_core = sorted((c.gflops_per_core for c in self.cpu_clusters for _ in range(c.cores)),
                          reverse=True)
        return sum(per_core[: threads or self.threads])


def devices_dir() -> Path:
    """The folder of device profiles, beside the target files."""
    return targets_dir() / "devices"


@functools.cache
def all_devices() -> dict[str, DeviceProfile]:
    """Every built-in device profile, by file name (files starting with '_' are not profiles)."""
    paths = sorted(p for p in devices_dir().glob("*.toml") if not p.name.startswith("_"))
    return {p.stem: read_device(p) for p in paths}


def get_device(spec: str) -> DeviceProfile:
    """The device profile `spec` names: a built-in name (pixel-8), or the path of the user's
    own profile (a name ending in .toml or holding a path separator).

    Raises:
        ConfigError: an unknown name (naming the known ones), a missing file, or a file that
            does not validate.
    """
    if spec.endswith(".toml") or "/" in spec or os.sep in spec:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise ConfigError(f"{path}: device profile not found; `edgekit devices --template "
                              f"> {path.name}` writes one to fill in")
        return read_device(path)
    devices = all_devices()
    if spec not in devices:
        raise ConfigError(f"unknown device '{spec}' (known: {', '.join(devices)}); "
                          "`edgekit devices` lists them, or pass your own profile's .toml path")
    return devices[spec]


def resolve_devices(specs: Sequence[str]) -> list[DeviceProfile]:
    """The profiles for `specs` (names or paths), once each; two with one name are refused,
    since reports and `[budgets.devices.<name>]` tell devices apart by name."""
    profiles: dict[str, DeviceProfile] = {}
    for spec in dict.fromkeys(specs):
        profile = get_device(spec)
        if profile.key in profiles:
            raise ConfigError(f"two device profiles are named '{profile.key}' "
                              f"({profiles[profile.key].source}, {profile.source}); "
                              "rename one file")
        profiles[profile.key] = profile
    return list(profiles.values())


def read_device(path: Path) -> DeviceProfile:
    """Read and validate one device profile (built in or the user's): the key is the file name.

    Raises:
        ConfigError: one line `<file>: <key>: <what is wrong and the fix>`.
    """
    try:
        data = DeviceFile.model_validate(read_toml(path))
    except ValidationError as exc:
        raise ConfigError(_profile_error(path, exc)) from None
    for field in _SOURCED:
        if getattr(data, field) is not None and not any(
                k == field or k.startswith(field + ".") for k in data.sources):
            raise ConfigError(f"{path}: sources.{field}: missing; every number needs its "
                              f"public source: add \"{field}\" = \"<URL or document>\" under "
                              "[sources]")
    cores = sum(c.cores for c in data.cpu_clusters)
    if data.threads > cores:
        raise ConfigError(f"{path}: threads: {data.threads} is more than the {cores} cores of "
                          "cpu_clusters; use at most the prime and performance cores")
    return DeviceProfile(
        key=path.stem, name=data.name, os=data.os, soc=data.soc, tier=data.tier,
        threads=data.threads, ram_gib=data.ram_gib,
        app_memory_budget_mib=data.app_memory_budget_mib, cpu_clusters=data.cpu_clusters,
        memory_type=data.memory.type, memory_bandwidth_gbps=data.memory.bandwidth_gbps,
        gpu=data.gpu, npu=data.npu, estimates=data.estimates, sources=dict(data.sources),
        source=path)


_KINDS = {"float_type": "a number", "int_type": "a whole number", "string_type": "a string",
          "bool_type": "true or false", "tuple_type": "a list", "dict_type": "a table",
          "model_type": "a table"}


def _profile_error(path: Path, exc: ValidationError) -> str:
    """The first problem as `<file>: <key>: <what is wrong and the fix>` (an unknown key
    first: a misspelt key is also reported missing under its right name)."""
    error = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
    loc = list(error["loc"])
    key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    field = _field_info(loc)
    meaning = field.description if field is not None and field.description else ""
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        table = _table_of(loc[:-1])
        known = f" (known: {', '.join(table.model_fields)})" if table is not None else ""
        return f"{path}: {key}: unknown key; remove it or fix its spelling{known}"
    if kind == "missing":
        return f"{path}: {key}: missing; add it" + (f": {meaning}" if meaning else "")
    if kind == "literal_error":
        return f"{path}: {key}: must be {error['ctx']['expected']}, got {value!r}"
    wrong = (f"must be {_KINDS[kind]}" if kind in _KINDS
             else error["msg"].replace("Input should be", "must be"))
    fix = meaning
    if kind in ("float_type", "int_type") and isinstance(value, str):
        fix = "write the number without its unit" + (f": {meaning}" if meaning else "")
    return f"{path}: {key}: {wrong}, got {value!r}" + (f"; {fix}" if fix else "")


def _table_of(loc: Sequence[Any]) -> type[BaseModel] | None:
    """The schema class of the table at `loc` (e.g. ("cpu_clusters", 0) -> CpuCluster)."""
    table: type[BaseModel] = DeviceFile
    for part in loc:
        if isinstance(part, int):
            continue
        info = table.model_fields.get(str(part))
        inner = _model_in(info.annotation) if info is not None else None
        if inner is None:
            return None
        table = inner
    return table


def _field_info(loc: Sequence[Any]) -> Any:
    names = [p for p in loc if not isinstance(p, int)]
    table = _table_of(loc[:-1]) if loc and not isinstance(loc[-1], int) else None
    return table.model_fields.get(str(names[-1])) if table is not None and names else None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The profile table class inside `annotation` (Memory, Accelerator | None, tuple[...])."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def device_template() -> str:
    """A commented device profile with every field, its unit and where to find it; its
    placeholder values validate as they are (`edgekit devices --template`)."""
    lines = ["# edgekit device profile: one phone, for latency estimates and host limits.",
             "# Every value below is a PLACEHOLDER describing a made-up mid-range phone: it",
             "# validates as it is, so `edgekit export --device this-file.toml` runs at once,",
             "# but estimates are only as good as the numbers. Replace each with your phone's,",
             "# and say where it came from under [sources]. Optional keys and tables are",
             "# commented out (`# key = ...`, `# [gpu]`): remove the '# ' to use one. Reports",
             "# name the profile after this file, without .toml.",
             ""]
    tables = []
    for name, field in DeviceFile.model_fields.items():
        model = _model_in(field.annotation)
        if model is None and name != "sources":
            lines += _template_field(name, field)
            continue
        example = (field.examples or [None])[0]
        rows = example if isinstance(example, list) else [example]
        for i, row in enumerate(rows):
            optional = not _active(field)
            header = f"[[{name}]]" if isinstance(example, list) else f"[{name}]"
            block = ([""] + _comment(field) if i == 0 else [""]) + [header]
            for key, value in row.items():
                sub = model.model_fields[key] if model is not None else None
                block += (_template_field(key, sub, value, comments=i == 0) if sub is not None
                          else [f"{_toml(key)} = {_toml(value)}"])
            tables += [f"# {line}" if optional and line and not line.startswith("#")
                       else line for line in block]
    return "\n".join(lines + tables) + "\n"


def _template_field(name: str, field: Any, value: Any = None, comments: bool = True
                    ) -> list[str]:
    """`name = value` under its comment; optional keys (default None) commented out."""
    value = (field.examples or [None])[0] if value is None else value
    line = f"{name} = {_toml(value)}"
    return (_comment(field) if comments else []) + [line if _active(field) else f"# {line}"]


def _active(field: Any) -> bool:
    """Whether the template writes the key for real: required, or with a default that is
    not None (estimates, sources); optional keys and tables are written commented out."""
    return bool(field.is_required() or field.get_default(call_default_factory=True)
                is not None)


def _comment(field: Any) -> list[str]:
    where = (field.json_schema_extra or {}).get("where", "")
    text = f"{field.description[0].upper()}{field.description[1:]}."
    if where:
        text += f" Where: {where}."
    if not _active(field):
        text += " Optional."
    return textwrap.wrap(text, 92, initial_indent="# ", subsequent_indent="# ")


def _toml(value: Any) -> str:
    """A TOML literal for a template value (strings, numbers, lists of those)."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)
