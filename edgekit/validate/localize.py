"""Which layer went wrong, and why: quantization, or the export and its runtime.

When an artifact fails parity, three runs of one sample are compared layer by layer (a layer
is a module that owns weights: Linear, Embedding, norms, convolutions):

- the fp32 eager student (the reference),
- the quantized eager student: the same module holding the plan's dequantized weights,
- the artifact in its runtime, with its per-layer values: ONNX Runtime on a copy of the
  .onnx whose graph also outputs each layer's value, the Core ML emulator's per-op values.
  Layers are found in the artifact by the torch.export node names that the ONNX exporter
  keeps as value names and coremltools keeps as op names.

The cause is "runtime/export" when the artifact is further from the quantized eager student
than that is from the fp32 student (the artifact does not compute what the plan says), else
"quantization". For runtime/export, the layer named is the first whose artifact-vs-quantized
error jumps (accumulated errors: everything after it inherits the jump). For quantization it
is the layer whose own quantization error is largest: each layer's quantized weights applied
to its fp32 input, which does not depend on the layers before it.

ExecuTorch's XNNPACK delegate runs the graph as one opaque subgraph (ETDump sees delegate
boundaries only), so a .pte has no per-layer values. Instead its stored weights are checked:
XNNPACK keeps float weights verbatim, so the first float layer whose exact weight bytes the
.pte lacks is where the export went wrong. Quantized layers are packed and not checked, and
an .ort file cannot take extra outputs: for those the cause is still decided from the
outputs, and a quantization layer still found in eager, but a runtime/export layer is not
named (the reason says why).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from edgekit.compress.quantize import QuantPlan
from edgekit.console import import_backend, quiet
from edgekit.errors import EdgekitError
from edgekit.model.student import Student
from edgekit.runtimes import open_session
from edgekit.validate.parity import ParityVerdict

_NOISE = 1e-3  # relative errors below this are rounding noise (fp16's unit roundoff: 4.9e-4)
_JUMP = 10.0  # an error this many times the worst before it (plus noise) is a jump
_ERROR_CAP = 1e30  # a non-finite value's error, in report.json
_COREML_SUFFIX = re.compile(r"(_cast_(fp16|fp32|uint16|int16|int32|bool))+$")


@dataclass(frozen=True)
class Localization:
    """Where a failing artifact first diverges, and whose fault it is."""

    cause: str  # "quantization" | "runtime/export"
    layer: str | None  # module path, e.g. model.model.layers.1.mlp.down_proj
    reason: str
    errors: dict[str, float]  # layer -> relative error behind the finding (the worst few)

    def to_json(self) -> dict[str, Any]:
        errors = {k: min(v, _ERROR_CAP) for k, v in self.errors.items()}  # JSON has no inf
        return {"cause": self.cause, "layer": self.layer, "reason": self.reason,
                "errors": errors}


def localize_failure(verdict: ParityVerdict, artifact: Any, student: Student, plan: QuantPlan,
                     sample: dict[str, np.ndarray], program: torch.export.ExportedProgram
                     ) -> ParityVerdict:
    """`verdict` with the localization of its failure added (others are returned as they are:
    a pass, a run that did not happen, or one stopped by the memory budget).

    Args:
        verdict: the judged verdict.
        artifact, student, plan, sample, program: as for `localize`.

    Returns:
        The verdict, with `localization` set when it failed on its metrics.
    """
    if verdict.verdict != "fail" or not verdict.metrics:
        return verdict
    try:
        found = localize(artifact, student, plan, sample, program, verdict.precision)
    except EdgekitError as exc:
        return dataclasses.replace(verdict, localization={
            "cause": None, "layer": None, "reason": f"localization failed: {exc}",
            "errors": {}})
    return dataclasses.replace(verdict, localization=found.to_json())


def localize(artifact: Any, student: Student, plan: QuantPlan,
             sample: dict[str, np.ndarray], program: torch.export.ExportedProgram,
             precision: str | None = None) -> Localization:
    """Find the layer where `artifact` departs from the student, and the cause.

    Args:
        artifact: the failing Artifact (path, input and output names).
        student: the (pruned) fp32 student the artifact was exported from.
        plan: its quantization plan (scheme "none" when not quantized).
        sample: one input sample, keyed by input name.
        program: the student's torch.export program (node names and module paths).
        precision: Core ML emulator precision (fp16 or fp32).

    Returns:
        The Localization.
    """
    fp32 = _eager_layers(student, student.module, sample)
    quantized = _eager_layers(student, plan.eager_module(student.module), sample) \
        if plan.quantized else fp32
    nodes = layer_nodes(program, list(fp32.layers))
    renamed = dict(zip(_output_nodes(program), student.output_names, strict=False))
    actual, layers, missing = _artifact_layers(artifact, sample, nodes, renamed, precision)
    quant_error = _error(_stack(quantized.outputs), _stack(fp32.outputs))
    export_error = _error(_stack(actual), _stack(quantized.outputs))
    if export_error > quant_error:
        if layers is None and artifact.path.suffix == ".pte":
            damaged = _pte_weight_not_stored(artifact.path, student, plan, list(fp32.layers))
            if damaged is not None:
                return Localization(
                    "runtime/export", damaged,
                    f"the artifact is {export_error:.3g} from the quantized eager student, "
                    f"which is {quant_error:.3g} from fp32; the .pte does not hold {damaged}'s "
                    "weights as the student has them (every float layer before it does)", {})
        return _runtime_export(layers, quantized.layers, export_error, quant_error, missing)
    local = _local_quantization_errors(student, plan, fp32)
    worst = max(local, key=local.__getitem__) if local else None
    top = dict(sorted(local.items(), key=lambda kv: -kv[1])[:3])
    return Localization("quantization", worst,
                        f"the quantized eager student is already {quant_error:.3g} from fp32 "
                        f"(the artifact adds {export_error:.3g}); worst layer quantization "
                        f"error: {worst} ({local.get(worst or '', 0.0):.3g})", top)


def _runtime_export(layers: dict[str, np.ndarray] | None, quantized: dict[str, np.ndarray],
                    export_error: float, quant_error: float, missing: str) -> Localization:
    head = (f"the artifact is {export_error:.3g} from the quantized eager student, which is "
            f"{quant_error:.3g} from fp32")
    if layers is None:
        return Localization("runtime/export", None, f"{head}; layer not localized: {missing}", {})
    errors = {name: _error(value, quantized[name]) for name, value in layers.items()}
    layer, worst_before = None, 0.0
    for name, error in errors.items():  # in execution order
        if (error + _NOISE) > _JUMP * (worst_before + _NOISE):
            layer = name
            break
        worst_before = max(worst_before, error)
    if layer is None and errors:
        layer = max(errors, key=errors.__getitem__)
    names = list(errors)
    around = names[max(0, names.index(layer) - 1):names.index(layer) + 2] if layer else []
    return Localization("runtime/export", layer,
                        f"{head}; first jump at {layer} "
                        f"({errors.get(layer or '', 0.0):.3g} after at most "
                        f"{worst_before:.3g} before)", {n: errors[n] for n in around})


@dataclass
class _EagerRun:
    layers: dict[str, np.ndarray]  # module path -> output, in execution order
    inputs: dict[str, tuple[torch.Tensor, ...]]  # module path -> its positional inputs
    outputs: list[np.ndarray]


def _eager_layers(student: Student, module: torch.nn.Module,
                  sample: dict[str, np.ndarray]) -> _EagerRun:
    run = _EagerRun({}, {}, [])
    handles = []
    for name, child in module.named_modules():
        if name and next(child.parameters(recurse=False), None) is not None:
            handles.append(child.register_forward_hook(_recorder(run, name)))
    try:
        with torch.no_grad(), quiet():
            out = module(*[torch.from_numpy(sample[s.name]) for s in student.inputs])
    finally:
        for handle in handles:
            handle.remove()
    outs = (out,) if isinstance(out, torch.Tensor) else tuple(out)
    run.outputs = [t.detach().float().numpy() for t in outs]
    return run


def _recorder(run: _EagerRun, name: str) -> Any:
    def hook(module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> None:
        value = output[0] if isinstance(output, tuple) else output
        if name not in run.layers and isinstance(value, torch.Tensor):
            run.layers[name] = value.detach().float().numpy().copy()
            run.inputs[name] = tuple(a for a in args if isinstance(a, torch.Tensor))
    return hook


def _local_quantization_errors(student: Student, plan: QuantPlan, fp32: _EagerRun
                               ) -> dict[str, float]:
    """Per planned layer: its quantized weights on its fp32 input, against its fp32 output."""
    modules = dict(student.module.named_modules(remove_duplicate=False))
    errors = {}
    for layer in plan.layers:
        if layer.weight is None:
            continue
        for name in layer.names:
            if name not in fp32.inputs or name not in modules:
                continue
            module = modules[name]
            weight = layer.weight.dequantize().to(module.weight.dtype)
            with torch.no_grad():
                if isinstance(module, torch.nn.Embedding):
                    out = torch.nn.functional.embedding(fp32.inputs[name][0], weight,
                                                        module.padding_idx)
                else:
                    out = torch.nn.functional.linear(fp32.inputs[name][0], weight, module.bias)
            errors[name] = _error(out.float().numpy(), fp32.layers[name])
    return errors


def _pte_weight_not_stored(path: Any, student: Student, plan: QuantPlan, order: list[str]
                           ) -> str | None:
    """The first float layer (execution order) whose weight's fp32 bytes the .pte lacks.

    XNNPACK keeps a float Linear/Embedding weight verbatim in the program's data, so a layer
    whose exact weight is absent was damaged on the way into the artifact. Quantized layers
    are packed by XNNPACK and not checked.
    """
    data = path.read_bytes()
    planned = {n for layer in plan.layers if layer.weight is not None for n in layer.names}
    modules = dict(student.module.named_modules(remove_duplicate=False))
    for name in order:
        module = modules.get(name)
        if name in planned or not isinstance(module, torch.nn.Linear | torch.nn.Embedding):
            continue
        weight = module.weight.detach().float().numpy()
        if data.find(weight.tobytes()) < 0:
            return name
    return None


def layer_nodes(program: torch.export.ExportedProgram, layers: list[str]) -> dict[str, str]:
    """Module path -> name of the last torch.export node inside it (the layer's output)."""
    wanted = set(layers)
    found: dict[str, str] = {}
    for node in program.graph.nodes:
        stack = node.meta.get("nn_module_stack") if node.op == "call_function" else None
        if not stack or "assert" in str(node.target):
            continue
        path = list(stack.values())[-1][0]
        if path in wanted:
            found[path] = node.name
    return {name: found[name] for name in layers if name in found}


def _output_nodes(program: torch.export.ExportedProgram) -> list[str]:
    output = next(n for n in program.graph.nodes if n.op == "output")
    values = output.args[0] if isinstance(output.args[0], (list, tuple)) else (output.args[0],)
    return [getattr(v, "name", "") for v in values]


def _artifact_layers(artifact: Any, sample: dict[str, np.ndarray], nodes: dict[str, str],
                     renamed: dict[str, str], precision: str | None
                     ) -> tuple[list[np.ndarray], dict[str, np.ndarray] | None, str]:
    """The artifact's outputs, its per-layer values (None when it exposes none) and why not."""
    suffix = artifact.path.suffix
    wanted = {layer: renamed.get(node, node) for layer, node in nodes.items()}
    if suffix == ".onnx":
        return _onnx_layers(artifact, sample, wanted)
    if suffix == ".mlpackage":
        return _coreml_layers(artifact, sample, wanted, precision)
    session = open_session(artifact.path, tuple(s.name for s in artifact.inputs),
                           tuple(artifact.outputs))
    outputs = session.run(sample)
    why = ("XNNPACK runs the graph as one delegate and ETDump sees only its boundary"
           if suffix == ".pte" else "an .ort model cannot take extra outputs; localize the "
                                    ".onnx it was converted from")
    return [outputs[n] for n in artifact.outputs], None, why


def _onnx_layers(artifact: Any, sample: dict[str, np.ndarray], wanted: dict[str, str]
                 ) -> tuple[list[np.ndarray], dict[str, np.ndarray], str]:
    onnx = import_backend("onnx")
    ort = import_backend("onnxruntime")
    model = onnx.load(str(artifact.path))
    produced = {out for node in model.graph.node for out in node.output}
    present = {o.name for o in model.graph.output}
    extra = [v for v in dict.fromkeys(wanted.values()) if v in produced and v not in present]
    for value in extra:
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(value))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    with quiet():
        session = ort.InferenceSession(model.SerializeToString(), sess_options=options,
                                       providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    feed = {i.name: sample[i.name] for i in session.get_inputs()}
    values = dict(zip(names, session.run(None, feed), strict=True))
    layers = {layer: values[v] for layer, v in wanted.items() if v in values}
    return [values[n] for n in artifact.outputs], layers, ""


def _coreml_layers(artifact: Any, sample: dict[str, np.ndarray], wanted: dict[str, str],
                   precision: str | None
                   ) -> tuple[list[np.ndarray], dict[str, np.ndarray], str]:
    from edgekit.runtimes.coreml import CoreMLEmulatorSession

    session = CoreMLEmulatorSession(artifact.path, precision or "fp16")
    outputs = session.run(sample, keep_intermediates=True)
    # coremltools keeps torch.export's node names, adding dtype suffixes ("_cast_fp16") and
    # numbering a first unnumbered name ("linear" -> "linear_0")
    by_base: dict[str, str] = {}
    for name in session.intermediates:
        by_base.setdefault(_COREML_SUFFIX.sub("", name), name)
    layers = {}
    for layer, value in wanted.items():
        var = value if value in outputs else by_base.get(value, by_base.get(f"{value}_0"))
        if var is not None:
            layers[layer] = outputs[var] if var in outputs else session.intermediates[var]
    return [outputs[n] for n in artifact.outputs], layers, ""


def _stack(values: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in values])


def _error(actual: np.ndarray, reference: np.ndarray) -> float:
    """Relative L2 error; inf when the actual values are not finite or shapes differ."""
    a = np.asarray(actual, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if a.size != r.size or not np.isfinite(a).all():
        return float("inf")
    norm = float(np.linalg.norm(r))
    return float(np.linalg.norm(a.ravel() - r.ravel()) / max(norm, 1e-12))
