"""Golden vectors: inputs, the outputs a runtime must reproduce, and the check that does it.

Each tensor is a raw little-endian file in C order (`.bin`), described in the manifest by
path, shape and dtype, so that JavaScript, Swift and Kotlin read it without a numpy parser.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.targets import Tolerance

DTYPES = {"float32": np.float32, "float16": np.float16, "int64": np.int64, "int32": np.int32}


def golden_inputs(task: str, inputs: list[dict[str, Any]], tokenizer: Any, vocab_size: int,
                  count: int, seed: int) -> list[dict[str, np.ndarray]]:
    """In-distribution inputs, made the way edgekit's parity samples are (corpus text through
    the student's tokenizer, natural images), so the self-test checks what parity checked."""
    import torch

    from edgekit.model.samples import sample_inputs
    from edgekit.model.student import Student, TensorSpec

    specs = tuple(TensorSpec(s["name"], tuple(s["shape"]), getattr(torch, s["dtype"]))
                  for s in inputs)
    student = Student(name="golden", task=task, module=torch.nn.Identity(), inputs=specs,
                      output_names=(), source="", tokenizer=tokenizer,
                      hf_config=SimpleNamespace(vocab_size=vocab_size))
    return sample_inputs(student, count, seed)


def write_tensor(root: Path, rel: str, array: np.ndarray) -> dict[str, Any]:
    """Write `array` at root/rel as raw little-endian bytes; returns its manifest entry."""
    dtype = np.dtype(array.dtype).name
    if dtype not in DTYPES:
        raise EdgekitError(f"{rel}: golden tensors are {', '.join(DTYPES)}, not {dtype}")
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    np.ascontiguousarray(array).astype(np.dtype(dtype).newbyteorder("<")).tofile(path)
    return {"path": rel, "shape": [int(d) for d in array.shape], "dtype": dtype}


def read_tensor(root: Path, entry: dict[str, Any]) -> np.ndarray:
    """The tensor a manifest entry describes (path already checked to stay in the bundle)."""
    path = root / entry["path"]
    dtype = np.dtype(DTYPES[entry["dtype"]]).newbyteorder("<")
    expected = int(np.prod(entry["shape"])) * dtype.itemsize
    if not path.is_file() or path.stat().st_size != expected:
        raise EdgekitError(f"{path}: golden tensor missing or not {expected} bytes "
                           f"({entry['dtype']} {entry['shape']})")
    return np.fromfile(path, dtype=dtype).reshape(entry["shape"]).astype(dtype.newbyteorder("="))


def run_artifact(path: Path, fmt: str, input_names: list[str], output_names: list[str],
                 samples: list[dict[str, np.ndarray]]) -> tuple[str, list[dict[str, np.ndarray]]]:
    """Run an artifact on every sample in edgekit's host runtime for its format.

    Returns:
        The runtime's label (name and version) and the outputs per sample (float32).

    Raises:
        RuntimeUnavailable: no host runtime (Core ML without its emulator).
        EdgekitError: the artifact cannot be loaded or run.
    """
    session, label = _open(path, fmt, input_names, output_names)
    results = []
    for sample in samples:
        feed = {n: _as_input(sample[n], fmt) for n in input_names}
        out = session.run(feed)
        results.append({n: np.asarray(out[n], dtype=np.float32) for n in output_names})
    return label, results


def _open(path: Path, fmt: str, input_names: list[str], output_names: list[str]) -> Any:
    from importlib.metadata import version

    if fmt == "coreml":
        from edgekit.runtimes.coreml import CoreMLEmulatorSession

        # fp16, as the Neural Engine and GPU compute; the emulator is not Core ML itself.
        return CoreMLEmulatorSession(path, "fp16"), "edgekit Core ML emulator (fp16)"
    from edgekit.runtimes import open_session

    session = open_session(path, tuple(input_names), tuple(output_names))
    runtime = "executorch" if fmt == "executorch" else "onnxruntime"
    return session, f"{runtime} {version(runtime)}"


def _as_input(array: np.ndarray, fmt: str) -> np.ndarray:
    # Core ML programs take int32 token ids where torch had int64.
    if fmt == "coreml" and array.dtype == np.int64:
        return array.astype(np.int32)
    return array


def self_test(golden: list[dict[str, np.ndarray]], actual: list[dict[str, np.ndarray]],
              tolerance: dict[str, float | None], logits: bool) -> dict[str, Any]:
    """The self-test the apps run, in Python: metrics against the golden outputs, and the
    verdict under the bundle's tolerance."""
    from edgekit.validate.parity import compare, judge

    metrics = compare(golden, actual, logits)
    verdict, reason = judge(metrics, Tolerance(**tolerance))
    return {"verdict": verdict, "reason": reason, "metrics": metrics}


def write_bundled_program(pte: Path, dest: Path, inputs: list[dict[str, np.ndarray]],
                          outputs: list[dict[str, np.ndarray]], input_names: list[str],
                          output_names: list[str]) -> None:
    """Write an ExecuTorch BundledProgram: the .pte with the golden vectors as the test
    suite of `forward`, which ExecuTorch's bundled-program runtime verifies on a device."""
    import torch

    from edgekit.console import import_backend, quiet

    bp = import_backend("executorch.devtools.bundled_program.core")
    config = import_backend("executorch.devtools.bundled_program.config")
    serialize = import_backend("executorch.devtools.bundled_program.serialize")
    cases = [config.MethodTestCase(
        inputs=[torch.from_numpy(np.ascontiguousarray(ins[n])) for n in input_names],
        expected_outputs=[torch.from_numpy(np.ascontiguousarray(outs[n])) for n in output_names])
        for ins, outs in zip(inputs, outputs, strict=True)]
    with quiet():
        program = bp.BundledProgram(None, [config.MethodTestSuite("forward", cases)],
                                    pte_file_path=str(pte))
        dest.write_bytes(serialize.serialize_from_bundled_program_to_flatbuffer(program))


def verify_bundled_program(path: Path, samples: int, rtol: float, atol: float) -> None:
    """Run every test case of a BundledProgram in ExecuTorch and check its expected outputs.

    Raises:
        EdgekitError: a case's outputs differ beyond rtol/atol, or the file does not load.
    """
    from edgekit.console import import_backend, quiet

    bindings = import_backend("executorch.extension.pybindings.portable_lib")
    try:
        with quiet():
            bundle = bindings._load_bundled_program_from_buffer(path.read_bytes())
            for index in range(samples):
                bundle.verify_result_with_bundled_expected_output("forward", index, rtol, atol)
    except Exception as exc:  # the bindings raise RuntimeError with an error code
        raise EdgekitError(f"{path}: bundled program check failed ({exc})") from None
