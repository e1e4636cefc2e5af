"""What an app does around the model: tokenizer and special ids, image normalisation, labels,
pooling. Read from the student's source (an HF folder or a .gguf) without loading weights."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from edgekit.console import import_backend, quiet
from edgekit.errors import EdgekitError

# ImageNet statistics: what edgekit's parity images use when a folder names none.
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
_SPECIAL = ("bos", "eos", "pad", "unk", "cls", "sep", "mask")


def source_config(source: str) -> dict[str, Any]:
    """The student's config.json as a dict ({} when the source has none, e.g. a module)."""
    path = Path(source)
    if path.is_dir() and (path / "config.json").is_file():
        try:
            return dict(json.loads((path / "config.json").read_text()))
        except json.JSONDecodeError as exc:
            raise EdgekitError(f"{path / 'config.json'}: not valid JSON ({exc})") from None
    return {}


def copy_tokenizer(source: str, dest: Path) -> tuple[list[str], Any]:
    """Write the student's tokenizer files into `dest` (tokenizer.json first).

    Args:
        source: the report's model source: an HF folder, or a .gguf (whose tokenizer
            transformers rebuilds as a tokenizer.json).
        dest: an empty folder inside the bundle.

    Returns:
        The file names written (empty when the student has no tokenizer.json) and the
        transformers tokenizer (None when there is none).
    """
    path = Path(source)
    folder = path if path.is_dir() else None
    if path.is_file() and path.suffix.lower() == ".gguf":
        transformers = import_backend("transformers")
        scratch = Path(tempfile.mkdtemp(prefix="edgekit-tokenizer-"))
        try:
            with quiet():
                tok = transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
                tok.save_pretrained(scratch)
            return _copy_files(scratch, dest), tok
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    if folder is None or not (folder / "tokenizer.json").is_file():
        return [], None
    transformers = import_backend("transformers")
    with quiet():
        tok = transformers.AutoTokenizer.from_pretrained(folder)
    return _copy_files(folder, dest), tok


def _copy_files(folder: Path, dest: Path) -> list[str]:
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name in TOKENIZER_FILES:
        if (folder / name).is_file():
            shutil.copyfile(folder / name, dest / name)
            written.append(name)
    return written


def special_ids(tokenizer: Any, config: dict[str, Any]) -> dict[str, int]:
    """Special token ids by role (bos, eos, pad, ...), from the tokenizer, else config.json."""
    ids: dict[str, int] = {}
    for role in _SPECIAL:
        value = getattr(tokenizer, f"{role}_token_id", None) if tokenizer is not None else None
        if value is None:
            value = config.get(f"{role}_token_id")
        if isinstance(value, list):  # some configs list several eos ids; the first ends text
            value = value[0] if value else None
        if isinstance(value, int):
            ids[role] = value
    return ids


def preprocessing(inputs: list[dict[str, Any]], source: str, tokenizer_files: list[str],
                  tokenizer: Any, folder: str) -> dict[str, Any]:
    """The manifest's `preprocessing`: how an app turns text or an image into the inputs.

    Args:
        inputs: the artifact's input specs (name, shape, dtype).
        source: the student's source (an HF folder holds preprocessor_config.json).
        tokenizer_files: the tokenizer files copied into the bundle (may be empty).
        tokenizer: the transformers tokenizer, for special ids (None without one).
        folder: the bundle folder the tokenizer files are in.

    Returns:
        A `text`, `image` or `none` preprocessing entry (docs/bundle.md).
    """
    config = source_config(source)
    names = [spec["name"] for spec in inputs]
    if "input_ids" in names:
        spec = inputs[names.index("input_ids")]
        text: dict[str, Any] = {"kind": "text", "seq_len": int(spec["shape"][-1])}
        if tokenizer_files:
            text["tokenizer"] = "tokenizer.json"
            text["files"] = [f"{folder}/{name}" for name in tokenizer_files]
        else:  # what edgekit's parity samples use for students without a tokenizer
            text["tokenizer"] = "bytes"
            text["files"] = []
        text["vocab_size"] = int(config.get("vocab_size") or getattr(tokenizer, "vocab_size", 0)
                                 or 256)
        text["special_ids"] = special_ids(tokenizer, config)
        text["padding"] = "right"  # causal students read the last real position; encoders mask
        return text
    if "pixel_values" in names:
        return _image(inputs[names.index("pixel_values")], source)
    return {"kind": "none"}


def _image(spec: dict[str, Any], source: str) -> dict[str, Any]:
    folder = Path(source)
    pre: dict[str, Any] = {}
    if folder.is_dir() and (folder / "preprocessor_config.json").is_file():
        pre = json.loads((folder / "preprocessor_config.json").read_text())
    channels, height, width = (int(d) for d in spec["shape"][1:4])
    mean = pre.get("image_mean") or IMAGENET_MEAN
    std = pre.get("image_std") or IMAGENET_STD
    return {"kind": "image", "layout": "NCHW", "height": height, "width": width,
            "channels": channels, "rescale": float(pre.get("rescale_factor", 1 / 255)),
            "mean": [float(v) for v in mean][:channels], "std": [float(v) for v in std][:channels],
            "resize": "bilinear"}


def postprocessing(task: str, outputs: list[str], source: str) -> dict[str, Any]:
    """The manifest's `postprocessing`: what the app does with the outputs."""
    config = source_config(source)
    output = outputs[0] if outputs else ""
    if task == "text-generation":
        # The full-window graph: logits at the last real token give the next one. A decode
        # (KV-cache) artifact, when the export has one, replaces this loop.
        return {"kind": "next_token", "output": output, "decoding": "greedy",
                "position": "last_token"}
    if task == "feature-extraction":
        return {"kind": "embedding", "output": output, "pooling": "mean", "normalize": True}
    if task in ("text-classification", "image-classification"):
        return {"kind": "classes", "output": output, "labels": labels(config)}
    if task == "fill-mask":
        return {"kind": "fill_mask", "output": output}
    return {"kind": "none", "output": output}


def labels(config: dict[str, Any]) -> list[str]:
    """Class names in index order from config.json's id2label (LABEL_i when absent)."""
    id2label = config.get("id2label") or {}
    count = int(config.get("num_labels") or len(id2label) or 0)
    return [str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(count)]
