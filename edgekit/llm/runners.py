"""Decode sessions, one per format, behind one small interface: feed tokens, get the logits
of the last one. The KV cache lives in the session (ExecuTorch: the program's mutable
buffers; ONNX: past/present arrays; eager: the token history, recomputed each step).
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

    def feed(self, tokens: list[int]) -> np.ndarray: ...

    def reset(self) -> None: ...


def _check_room(session: DecodeSession, count: int, where: object) -> None:
    if count < 1:
        raise EdgekitError(f"{where}: no tokens to feed")
    if session.position + count > session.max_seq_len:
        raise EdgekitError(f"{where}: {session.position} cached + {count} new tokens exceed "
                           f"max_seq_len {session.max_seq_len}")


class ExecuTorchDecodeSession:
    """A decode .pte run by ExecuTorch's Python bindings (XNNPACK and the LLM custom ops)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        runtime = import_backend("executorch.runtime")
        import_backend("executorch.extension.llm.custom_ops.custom_ops")  # llama:: kernels
        import_backend("executorch.kernels.quantized")  # embedding_4bit/byte kernels
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

    def feed(self, tokens: list[int]) -> np.ndarray:
        _check_room(self, len(tokens), self.path)
        args = [torch.tensor([tokens], dtype=torch.long), torch.tensor([self.position])]
        try:
            with quiet():
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


class EagerDecodeSession:
    """The reference: the transformers model run on the whole history at every step (no
    cache at all, so nothing cache-related can make it wrong)."""

    def __init__(self, model: torch.nn.Module, max_seq_len: int) -> None:
        self._model = model.eval()
        self.max_seq_len = max_seq_len
        self.path = "eager"
        self.reset()

    def reset(self) -> None:
        self._history: list[int] = []
        self.position = 0

    def feed(self, tokens: list[int]) -> np.ndarray:
        _check_room(self, len(tokens), "eager student")
        self._history.extend(tokens)
        self.position = len(self._history)
        with torch.no_grad():
            ids = torch.tensor([self._history], dtype=torch.long)
            logits = self._model(input_ids=ids, use_cache=False).logits
        return logits[0, -1].float().numpy()


def open_decoder(path: Path, threads: int | None = None) -> DecodeSession:
    """Open a decode artifact in its runtime.

    Args:
        path: a decode .pte, or an ONNX decode folder (genai_config.json + model.onnx, or
            that model.onnx).
        threads: intra-op threads; None lets the runtime choose.

    Raises:
        EdgekitError: no such artifact, or not a decode artifact.
    """
    if not path.exists():
        raise EdgekitError(f"{path}: no such artifact")
    if path.suffix == ".pte":
        return ExecuTorchDecodeSession(path, threads)
    folder = path if path.is_dir() else path.parent
    if (folder / "genai_config.json").is_file():
        return OnnxDecodeSession(folder, threads)
    if path.suffix == ".mlpackage":
        raise EdgekitError(f"{path}: Core ML decode artifacts are not supported yet "
                           "(edgekit export --decode writes .pte and ONNX genai folders)")
    raise EdgekitError(f"{path}: not a decode artifact (expected a decode .pte or an ONNX "
                       "folder with genai_config.json)")
