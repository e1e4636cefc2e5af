"""Read back the quantized weights an ExecuTorch .pte holds, as the runtime will see them.

Two places hold them:

- XNNPACK delegates: each payload is an XNNHeader, an XNNGraph flatbuffer (decoded with
  ExecuTorch's own flatc and schema) and constant data. A quantized Linear weight is a
  static `XNNQuantizedTensorValue`: qbint4 (blockwise 4-bit, PerChannelGroupQuant), qcint4 or
  qcint8 (per output channel, PerChannelQuant). 4-bit codes are packed two per byte, the
  even input channel in the low nibble, stored as unsigned (code + 8). The serializer casts
  blockwise scales to bf16; per-channel scales keep their dtype (fp32). Codes and scales
  live in the program's named data (by key) or in the payload's constant data (by offset).
- Quantized embeddings (not delegated): the arguments of quantized_decomposed::embedding_4bit
  / embedding_byte are constant tensors of the program. embedding_4bit packs two codes per
  byte the other way round (even channel in the high nibble), also as code + 8.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.console import import_backend
from edgekit.errors import EdgekitError

_XNN_QUANTIZED_WEIGHTS = {"xnn_datatype_qbint4": 4, "xnn_datatype_qcint4": 4,
                          "xnn_datatype_qcint8": 8}
_EMBEDDING_BITS = {"quantized_decomposed::embedding_4bit": 4,
                   "quantized_decomposed::embedding_byte": 8}
# ExecuTorch ScalarType names -> numpy dtypes (bf16 is widened to float32 after reading)
_SCALAR_TYPES = {"BYTE": np.uint8, "CHAR": np.int8, "HALF": np.float16, "FLOAT": np.float32,
                 "BFLOAT16": np.uint16}


@dataclass(frozen=True)
class PteWeight:
    """One quantized weight as stored in the .pte, unpacked to signed integer codes."""

    kind: str  # linear (XNNPACK fully-connected filter) | embedding
    where: str  # which delegate value or instruction holds it
    bits: int
    codes: np.ndarray  # int8 [out, in], the signed codes the kernel multiplies
    scales: np.ndarray  # float32 [out, groups]: the stored scales, widened exactly
    scale_dtype: str  # what the .pte stores the scales as: bf16 | fp16 | fp32
    group_size: int
    zeros: np.ndarray | None = None  # float32 [out, groups]; embeddings with zero points only

    def dequantize(self) -> np.ndarray:
        """The float32 weight the runtime computes with: scale * (code - zero)."""
        codes = self.codes.astype(np.float32)
        if self.zeros is not None:
            codes = codes - np.repeat(self.zeros, self.group_size, axis=1)
        return codes * np.repeat(self.scales, self.group_size, axis=1)


def read_pte_weights(path: Path) -> list[PteWeight]:
    """Every quantized Linear weight in the XNNPACK delegates of `path` and every quantized
    embedding table of its program.

    Args:
        path: an ExecuTorch .pte file.

    Returns:
        The weights in program order (delegates first, then embeddings).

    Raises:
        EdgekitError: the file is missing or not an ExecuTorch program, or a weight is stored
            outside it (a .ptd data file) or in a layout this reader does not know.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise EdgekitError(f"{path}: cannot read ({exc.strerror})") from None
    if data[4:6] != b"ET":  # the Program flatbuffer's file identifier (ET12)
        raise EdgekitError(f"{path}: not an ExecuTorch .pte (no 'ET' identifier at byte 4)")
    serialize = import_backend("executorch.exir._serialize._program")
    try:
        pte = serialize.deserialize_pte_binary(data)
    except Exception as exc:  # flatbuffer/segment errors of many types
        raise EdgekitError(f"{path}: not an ExecuTorch program ({type(exc).__name__})") from None
    named = {}
    if pte.named_data is not None:
        named = {key: bytes(pte.named_data.buffers[entry.buffer_index])
                 for key, entry in pte.named_data.pte_data.items()}
    program = pte.program
    return [*_delegate_weights(path, program, named), *_embedding_weights(path, program)]


def _delegate_weights(path: Path, program: Any, named: dict[str, bytes]) -> list[PteWeight]:
    header = import_backend("executorch.backends.xnnpack.serialization.xnnpack_graph_serialize")
    payloads = []
    for plan in program.execution_plan:
        for delegate in plan.delegates:
            if delegate.id != "XnnpackBackend":
                continue
            # deserialize_pte_binary moves segment payloads back inline
            payloads.append(bytes(program.backend_delegate_data[delegate.processed.index].data))
    graphs = _xnn_graphs([_split(p, header.XNNHeader)[1] for p in payloads])
    weights = []
    for index, (payload, graph) in enumerate(zip(payloads, graphs, strict=True)):
        read = partial(_delegate_constant, path, index, graph,
                       _split(payload, header.XNNHeader)[2], named)
        for value in graph["xvalues"]:
            if value["xvalue_union_type"] != "XNNQuantizedTensorValue":
                continue
            tensor = value["xvalue_union"]["tensor_value"]
            bits = _XNN_QUANTIZED_WEIGHTS.get(tensor["datatype"])
            if bits is None or not tensor["constant_buffer_idx"]:
                continue  # activations and int32 biases
            where = f"XNNPACK delegate {index}, value {tensor['id_out']}"
            weights.append(_xnn_weight(value["xvalue_union"], bits, read, where))
    return weights


def _delegate_constant(path: Path, index: int, graph: dict[str, Any], constants: bytes,
                       named: dict[str, bytes], buffer: int) -> bytes:
    """Bytes of an XNNGraph constant: from the named data by key, or the payload by offset."""
    entry = graph["constant_data"][buffer]
    key = entry.get("named_key") or ""
    if not key:
        return constants[entry["offset"]:entry["offset"] + entry["size"]]
    if key not in named:
        raise EdgekitError(f"{path}: XNNPACK delegate {index} reads '{key}' from outside the "
                           ".pte (a .ptd file); pass the merged program")
    return named[key]


def _split(payload: bytes, xnn_header: Any) -> tuple[Any, bytes, bytes]:
    """(header, flatbuffer, constant data) of an XNNPACK payload."""
    header = xnn_header.from_bytes(payload[:xnn_header.EXPECTED_LENGTH])
    graph = payload[header.flatbuffer_offset:header.flatbuffer_offset + header.flatbuffer_size]
    constants = payload[header.constant_data_offset:
                        header.constant_data_offset + header.constant_data_size]
    return header, graph, constants


def _xnn_graphs(flatbuffers: list[bytes]) -> list[dict[str, Any]]:
    """Decode XNNGraph flatbuffers to JSON with ExecuTorch's flatc, in one call."""
    if not flatbuffers:
        return []
    flatc = import_backend("executorch.exir._serialize._flatbuffer")
    schema = resources.files("executorch.backends.xnnpack.serialization") / "schema.fbs"
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "schema.fbs").write_bytes(schema.read_bytes())
        for index, graph in enumerate(flatbuffers):
            (root / f"graph{index}.bin").write_bytes(graph)
        flatc._run_flatc(["--json", "--defaults-json", "--strict-json", "-o", folder,
                          str(root / "schema.fbs"), "--",
                          *(str(root / f"graph{i}.bin") for i in range(len(flatbuffers)))])
        return [_json_loads((root / f"graph{i}.json").read_text())
                for i in range(len(flatbuffers))]


def _json_loads(text: str) -> Any:
    """flatc writes non-finite floats (a ReLU's output_max) as bare inf/nan; Python's json
    reads them as Infinity/NaN."""
    names = {"inf": "Infinity", "-inf": "-Infinity", "nan": "NaN", "-nan": "NaN"}
    return json.loads(re.sub(r"(?<=: )(-?(?:inf|nan))\b", lambda m: names[m.group(1)], text))


def _xnn_weight(value: dict[str, Any], bits: int, read: Callable[[int], bytes],
                where: str) -> PteWeight:
    tensor, params = value["tensor_value"], value["quant_params"]
    rows, cols = tensor["dims"]
    raw = np.frombuffer(read(tensor["constant_buffer_idx"]), dtype=np.uint8)
    if bits == 4:  # convert_to_qc4w: even channel in the low nibble, odd input rows padded
        codes = _unpack_int4(raw.reshape(rows, -1), even_in_low_nibble=True)[:, :cols]
    else:
        codes = raw.view(np.int8).reshape(rows, cols)
    kind = value["quant_params_type"]
    if kind == "PerChannelGroupQuant":
        group, scale_dtype = params["group_size"], "bf16"
    elif kind == "PerChannelQuant":
        group, scale_dtype = cols, "fp32"
    else:
        raise EdgekitError(f"{where}: quantized weight with {kind} is not a known layout")
    if params["scale"]:  # older programs: fp32 scales inline in the flatbuffer
        scales, scale_dtype = np.asarray(params["scale"], dtype=np.float32), "fp32"
    else:
        stored = read(params["scale_buffer_idx"])
        if len(stored) != params["num_scales"] * (2 if scale_dtype == "bf16" else 4):
            raise EdgekitError(f"{where}: {len(stored)} bytes for {params['num_scales']} "
                               f"{scale_dtype} scales")
        scales = (_widen_bf16(np.frombuffer(stored, dtype=np.uint16)) if scale_dtype == "bf16"
                  else np.frombuffer(stored, dtype=np.float32).copy())
    return PteWeight("linear", where, bits, codes, scales.reshape(rows, cols // group),
                     scale_dtype, group)


def _unpack_int4(packed: np.ndarray, even_in_low_nibble: bool) -> np.ndarray:
    """[rows, n] bytes of two unsigned 4-bit values (code + 8) -> int8 codes [rows, 2n]."""
    low = (packed & 0x0F).astype(np.int8) - 8
    high = (packed >> 4).astype(np.int8) - 8
    codes = np.empty((packed.shape[0], packed.shape[1] * 2), dtype=np.int8)
    codes[:, 0::2], codes[:, 1::2] = (low, high) if even_in_low_nibble else (high, low)
    return codes


def _widen_bf16(bits: np.ndarray) -> np.ndarray:
    """bf16 bit patterns -> float32 (exact: bf16 is the top half of a float32)."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _embedding_weights(path: Path, program: Any) -> list[PteWeight]:
    weights = []
    for plan in program.execution_plan:
        for c, chain in enumerate(plan.chains):
            for i, instruction in enumerate(chain.instructions):
                call = instruction.instr_args
                if type(call).__name__ != "KernelCall":
                    continue
                bits = _EMBEDDING_BITS.get(plan.operators[call.op_index].name)
                if bits is None:
                    continue
                where = (f"{plan.operators[call.op_index].name} "
                         f"(plan {plan.name}, chain {c}, instruction {i})")
                weight, scales, zeros = (plan.values[a].val for a in call.args[:3])
                weights.append(_embedding_weight(path, program, bits, where, weight, scales,
                                                 zeros))
    return weights


def _embedding_weight(path: Path, program: Any, bits: int, where: str, weight: Any,
                      scales: Any, zeros: Any) -> PteWeight:
    packed = _constant_tensor(path, program, weight, where)
    rows = packed.shape[0]
    if bits == 4:  # quant_fusion::_pack_embedding_weight: even channel in the high nibble
        codes = _unpack_int4(packed, even_in_low_nibble=False)
    else:
        codes = packed.view(np.int8)
    scale_dtype = {"HALF": "fp16", "FLOAT": "fp32", "BFLOAT16": "bf16"}[scales.scalar_type.name]
    stored = _constant_tensor(path, program, scales, where).reshape(rows, -1)
    zero = None
    if type(zeros).__name__ == "Tensor":
        zero = _constant_tensor(path, program, zeros, where).reshape(rows, -1)
        zero = zero.astype(np.float32)
    group = codes.shape[1] // stored.shape[1]
    return PteWeight("embedding", where, bits, codes, stored.astype(np.float32), scale_dtype,
                     group, zero)


def _constant_tensor(path: Path, program: Any, tensor: Any, where: str) -> np.ndarray:
    """A constant tensor of the program, as numpy (bf16 widened to float32)."""
    name = tensor.scalar_type.name
    if name not in _SCALAR_TYPES:
        raise EdgekitError(f"{where}: constant of type {name} is not a known weight type")
    if not tensor.data_buffer_idx:
        raise EdgekitError(f"{path}: {where} reads a constant stored outside the .pte "
                           "(a .ptd file); pass the merged program")
    dtype = np.dtype(_SCALAR_TYPES[name])
    count = int(np.prod(tensor.sizes))
    storage = bytes(program.constant_buffer[tensor.data_buffer_idx].storage)
    array = np.frombuffer(storage[:count * dtype.itemsize], dtype=dtype).reshape(tensor.sizes)
    return _widen_bf16(array) if name == "BFLOAT16" else array.copy()
