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


# --- Device profiles: targets/devices/<name>.toml -------------------------------------------

COMPUTE_UNITS = ("cpu", "gpu", "npu")
_DEVICE_KEYS = {"name", "os", "soc", "tier", "released", "threads", "ram_gib",
                "app_memory_budget_mib", "cpu_clusters", "memory", "gpu", "npu", "estimates",
                "notes", "sources"}
_CLUSTER_KEYS = {"role", "cores", "ghz", "microarchitecture", "fp32_flops_per_cycle"}
_MEMORY_KEYS = {"type", "bus_bits", "bandwidth_gbps"}
_ACCELERATOR_KEYS = {"name", "cores", "fp16_tflops", "tops", "formats"}
# Every number in a device file must say where it came from: these fields need a `sources` key.
_SOURCED = ("cpu_clusters", "memory", "ram_gib", "gpu", "npu")


@dataclass(frozen=True)
class CpuCluster:
    """One cluster of identical CPU cores."""

    role: str  # "prime", "performance" or "efficiency"
    cores: int
    ghz: float
    microarchitecture: str
    fp32_flops_per_cycle: int  # per core: SIMD FMA pipes x lanes x 2

    @property
    def gflops_per_core(self) -> float:
        return self.ghz * self.fp32_flops_per_cycle


@dataclass(frozen=True)
class Accelerator:
    """A GPU or NPU; throughput is None where the vendor publishes none."""

    name: str
    cores: int | None
    fp16_tflops: float | None
    tops: float | None
    formats: tuple[str, ...]


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
    """Every device profile, by file name (files starting with '_' are not profiles)."""
    paths = sorted(p for p in devices_dir().glob("*.toml") if not p.name.startswith("_"))
    return {p.stem: _read_device(p) for p in paths}


def get_device(name: str) -> DeviceProfile:
    """The device profile called `name`; ConfigError naming the known ones otherwise."""
    devices = all_devices()
    if name not in devices:
        raise ConfigError(f"unknown device '{name}' (known: {', '.join(devices)}); "
                          "`edgekit devices` lists them")
    return devices[name]


def _read_device(path: Path) -> DeviceProfile:
    data = read_toml(path)
    _reject_unknown(data, _DEVICE_KEYS, path, "")
    sources = {str(k): str(v) for k, v in data.get("sources", {}).items()}
    missing = [f for f in _SOURCED if f in data and not any(
        k == f or k.startswith(f + ".") for k in sources)]
    if missing:
        raise ConfigError(f"{path}: '{missing[0]}' has no entry in [sources]; every number "
                          "needs its public source")
    try:
        clusters = []
        for i, cluster in enumerate(data["cpu_clusters"]):
            _reject_unknown(cluster, _CLUSTER_KEYS, path, f"cpu_clusters[{i}].")
            clusters.append(CpuCluster(str(cluster["role"]), int(cluster["cores"]),
                                       float(cluster["ghz"]), str(cluster["microarchitecture"]),
                                       int(cluster["fp32_flops_per_cycle"])))
        memory = data["memory"]
        _reject_unknown(memory, _MEMORY_KEYS, path, "memory.")
        profile = DeviceProfile(
            key=path.stem,
            name=str(data["name"]),
            os=str(data["os"]),
            soc=str(data["soc"]),
            tier=str(data["tier"]),
            threads=int(data["threads"]),
            ram_gib=float(data["ram_gib"]),
            app_memory_budget_mib=float(data["app_memory_budget_mib"]),
            cpu_clusters=tuple(clusters),
            memory_type=str(memory["type"]),
            memory_bandwidth_gbps=float(memory["bandwidth_gbps"]),
            gpu=_read_accelerator(data, "gpu", path),
            npu=_read_accelerator(data, "npu", path),
            estimates=tuple(str(e) for e in data.get("estimates", ())),
            sources=sources,
            source=path,
        )
    except KeyError as exc:
        raise ConfigError(f"{path}: missing key {exc.args[0]!r}") from None
    if profile.tier not in ("high", "mid", "low"):
        raise ConfigError(f"{path}: 'tier' must be high, mid or low, got '{profile.tier}'")
    if not 1 <= profile.threads <= sum(c.cores for c in clusters):
        raise ConfigError(f"{path}: 'threads' must be between 1 and the number of cores")
    return profile


def _read_accelerator(data: dict[str, Any], key: str, path: Path) -> Accelerator | None:
    if key not in data:
        return None
    values = data[key]
    _reject_unknown(values, _ACCELERATOR_KEYS, path, f"{key}.")
    formats = tuple(values.get("formats", ()))
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ConfigError(f"{path}: '{key}.formats' must list some of {', '.join(FORMATS)}, "
                          f"got {bad}")

    def number(name: str) -> float | None:
        return float(values[name]) if name in values else None

    cores = values.get("cores")
    return Accelerator(str(values["name"]), int(cores) if cores is not None else None,
                       number("fp16_tflops"), number("tops"), formats)
