"""Decode sessions, one per format, behind one small interface: feed tokens, get the logits
of the last one. The KV cache lives in the session (ExecuTorch: the program's mutable
buffers; ONNX: past/present arrays; Core ML: the emulator session's states; eager: the token
history, recomputed each step).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from edgekit.console import import_backend, quiet
from edgekit.errors import EdgekitError


class DecodeSession(Protocol):
    """A decoder LM with a KV cache: `feed` appends tokens and returns the last logits."""

    max_seq_len: int
    position: int  # tokens in the cache
    emulated: bool  # run by an emulator of the phone runtime (Core ML), not the runtime

    def feed(self, tokens: list[int]) -> np.ndarray: ...

    def reset(self) -> None: ...


def _check_room(session: DecodeSession, count: int, where: object) -> None:
    if count < 1:
        raise EdgekitError(f"{where}: no tokens to feed")
    if session.position + count > session.max_seq_len:
        raise EdgekitError(f"{where}: {session.position} cached + {count} new tokens exceed "
                           f"max_seq_len {session.max_seq_len}")


def load_decode_kernels() -> None:
    """Register the kernels a decode .pte calls outside XNNPACK: ExecuTorch's LLM custom ops
    (llama::custom_sdpa, update_cache) and the quantized embedding kernels."""
    import_backend("executorch.extension.llm.custom_ops.custom_ops")
    import_backend("executorch.kernels.quantized")


class ExecuTorchDecodeSession:
    """A decode .pte run by ExecuTorch's Python bindings (XNNPACK and the LLM custom ops)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        runtime = import_backend("executorch.runtime")
        load_decode_kernels()
        if threads:
            bindings = import_backend("executorch.extension.pybindings.portable_lib")
            with quiet():  # XNNPACK's threadpool is process-wide in the bindings
                bindings._unsafe_reset_threadpool(threads)
        try:
            with quiet():
                program = runtime.Runtime.get().load_program(str(path))
                self._method = program.load_method("forward")
                self.max_seq_len = int(program.load_method("get_max_seq_len").execute([])[0])
        except Exception as exc:  # the bindings raise RuntimeError/ValueError for bad files
            raise EdgekitError(f"{path}: ExecuTorch could not load it as a decode program "
                               f"({str(exc).splitlines()[0] if str(exc) else exc})") from None
        self.path = path
        self.position = 0
        self.emulated = False

    def feed(self, tokens: list[int]) -> np.ndarray:
        _check_room(self, len(tokens), self.path)
        args = [torch.tensor([tokens], dtype=torch.long), torch.tensor([self.position])]
        try:  # not under quiet(): it costs ~0.8 ms a call (measured), and execute prints nothing
            logits = self._method.execute(args)[0]
        except Exception as exc:  # the bindings raise RuntimeError with an error code
            raise EdgekitError(f"{self.path}: ExecuTorch run failed ({exc})") from None
        self.position += len(tokens)
        return logits.numpy().reshape(-1).copy()

    def reset(self) -> None:
        # custom_sdpa attends to positions < start_pos + T only, all rewritten after a reset
        self.position = 0


class OnnxDecodeSession:
    """An onnxruntime-genai folder's model.onnx run by ONNX Runtime, past/present in numpy."""

    def __init__(self, folder: Path, threads: int | None = None) -> None:
        from edgekit.runtimes.onnxruntime import OnnxRuntimeSession

        config = json.loads((folder / "genai_config.json").read_text())["model"]
        decoder = config["decoder"]
        self.max_seq_len = int(config["context_length"])
        self._layers = int(decoder["num_hidden_layers"])
        self._cache_shape = (1, int(decoder["num_key_value_heads"]), 0,
                             int(decoder["head_size"]))
        self._session = OnnxRuntimeSession(folder / decoder["filename"], threads)
        self.path = folder
        self.emulated = False
        self.reset()

    def reset(self) -> None:
        self.position = 0
        empty = np.zeros(self._cache_shape, dtype=np.float32)
        self._past = {f"past_key_values.{i}.{kind}": empty for i in range(self._layers)
                      for kind in ("key", "value")}

    def feed(self, tokens: list[int]) -> np.ndarray:
        _check_room(self, len(tokens), self.path)
        total = self.position + len(tokens)
        outputs = self._session.run({
            "input_ids": np.array([tokens], dtype=np.int64),
            "attention_mask": np.ones((1, total), dtype=np.int64),
            "position_ids": np.arange(self.position, total, dtype=np.int64)[None],
            **self._past})
        self._past = {name: outputs[name.replace("past_key_values", "present")]
                      for name in self._past}
        self.position = total
        return np.asarray(outputs["logits"][0, -1], dtype=np.float32)


class CoreMLDecodeSession:
    """A stateful decode .mlpackage run by edgekit's Core ML emulator (Core ML itself needs
    macOS); the KV cache is the emulator session's state, kept across feeds until reset."""

    def __init__(self, path: Path, precision: str = "fp32") -> None:
        from edgekit.llm.coreml import read_metadata
        from edgekit.runtimes.coreml import CoreMLEmulatorSession

        metadata = read_metadata(path)
        self.max_seq_len = int(metadata["max_seq_len"])
        self._inputs = tuple(metadata["inputs"])
        self._output = str(metadata["output"])
        self._session = CoreMLEmulatorSession(path, precision)
        self.precision = precision
        self.path = path
        self.emulated = True
        self.position = 0

    def reset(self) -> None:
        self._session.reset_states()
        self.position = 0

    def feed(self, tokens: list[int]) -> np.ndarray:
        _check_room(self, len(tokens), self.path)
        tokens_name, position_name = self._inputs
        logits = self._session.run({tokens_name: np.array([tokens], dtype=np.int32),
                                    position_name: np.array([self.position], dtype=np.int32)})
        self.position += len(tokens)
        return np.asarray(logits[self._output], dtype=np.float32).reshape(-1)


class EagerDecodeSession:
    """The reference: the transformers model run on the whole history at every step (no
    cache at all, so nothing cache-related can make it wrong).

    With `fp16_state`, keys/values of tokens fed in earlier calls are read as fp16, as a Core
    ML decode package's fp16 state holds them between calls (still recomputed, no cache).
    """

    def __init__(self, model: torch.nn.Module, max_seq_len: int,
                 fp16_state: bool = False) -> None:
        from edgekit.llm.decode import Fp16StateReference

        self._model = (Fp16StateReference(model) if fp16_state else model).eval()
        self._fp16_state = fp16_state
        self.max_seq_len = max_seq_len
        self.path = "eager (fp16 KV state)" if fp16_state else "eager"
        self.emulated = False
        self.reset()

    def reset(self) -> None:
        self._history: list[int] = []
        self._calls: list[int] = []  # the call that fed each position
        self.position = 0

    def feed(self, tokens: list[int]) -> np.ndarray:
        _check_room(self, len(tokens), self.path)
        self._calls.extend([self._calls[-1] + 1 if self._calls else 0] * len(tokens))
        self._history.extend(tokens)
        self.position = len(self._history)
        with torch.no_grad():
            ids = torch.tensor([self._history], dtype=torch.long)
            if self._fp16_state:
                logits = self._model(ids, torch.tensor(self._calls))
            else:
                logits = self._model(input_ids=ids, use_cache=False).logits
        return logits[0, -1].float().numpy()


def open_decoder(path: Path, threads: int | None = None, precision: str | None = None
                 ) -> DecodeSession:
    """Open a decode artifact in its runtime.

    Args:
        path: a decode .pte, a decode .mlpackage (run in the Core ML emulator), or an ONNX
            decode folder (genai_config.json + model.onnx, or that model.onnx).
        threads: intra-op threads; None lets the runtime choose (the emulator ignores it).
        precision: Core ML only: the emulator's precision, fp32 or fp16 (default: the one
            the package computes in).

    Raises:
        EdgekitError: no such artifact, or not a decode artifact.
    """
    if not path.exists():
        raise EdgekitError(f"{path}: no such artifact")
    if path.suffix == ".pte":
        return ExecuTorchDecodeSession(path, threads)
    if path.suffix == ".mlpackage":
        return CoreMLDecodeSession(path, precision or _package_precision(path))
    folder = path if path.is_dir() else path.parent
    if (folder / "genai_config.json").is_file():
        return OnnxDecodeSession(folder, threads)
    raise EdgekitError(f"{path}: not a decode artifact (expected a decode .pte or "
                       ".mlpackage, or an ONNX folder with genai_config.json)")


def _package_precision(path: Path) -> str:
    from edgekit.llm.coreml import read_metadata

    return "fp16" if read_metadata(path).get("compute_precision") == "float16" else "fp32"
