"""The tokenizer files bundled beside each decode artifact, and the special token ids."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgekit.model.student import Student

SPECIAL_IDS_FILE = "special_tokens.json"


@dataclass(frozen=True)
class SpecialIds:
    """Token ids a generation loop needs; None where the student has none."""

    bos: int | None
    eos: tuple[int, ...]
    pad: int | None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["eos"] = list(self.eos)
        return data


def special_ids(student: Student) -> SpecialIds:
    """bos/eos/pad ids from the tokenizer, else from the transformers config."""
    config = student.hf_config
    tokenizer = student.tokenizer

    def pick(name: str) -> Any:
        value = getattr(tokenizer, f"{name}_token_id", None) if tokenizer is not None else None
        return value if value is not None else getattr(config, f"{name}_token_id", None)

    eos = pick("eos")
    eos_ids = tuple(int(e) for e in (eos if isinstance(eos, list | tuple) else [eos])
                    if e is not None)
    bos, pad = pick("bos"), pick("pad")
    return SpecialIds(bos=None if bos is None else int(bos), eos=eos_ids,
                      pad=None if pad is None else int(pad))


def write_tokenizer(student: Student, folder: Path) -> list[str]:
    """Write tokenizer.json, tokenizer_config.json (with the chat template) and the special ids
    into `folder`.

    Returns:
        The names of the files written (only special_tokens.json for a student without a
        tokenizer: generation then takes raw token ids).
    """
    written = []
    tokenizer = student.tokenizer
    if tokenizer is not None and getattr(tokenizer, "is_fast", False):
        tokenizer.save_pretrained(str(folder))
        keep = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                "chat_template.jinja"}
        for path in folder.iterdir():
            if path.name in keep:
                written.append(path.name)
    ids = special_ids(student)
    (folder / SPECIAL_IDS_FILE).write_text(json.dumps(ids.to_json(), indent=2) + "\n")
    written.append(SPECIAL_IDS_FILE)
    return sorted(written)


def read_special_ids(folder: Path) -> SpecialIds:
    """The special ids written beside an artifact (all None when the file is missing)."""
    path = folder / SPECIAL_IDS_FILE
    if not path.is_file():
        return SpecialIds(bos=None, eos=(), pad=None)
    data = json.loads(path.read_text())
    return SpecialIds(bos=data.get("bos"), eos=tuple(data.get("eos") or ()), pad=data.get("pad"))
