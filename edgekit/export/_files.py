"""Write-then-rename, so that no half-written artifact is ever left at its final path."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def staged(dest: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `dest` to write to; rename it to `dest` on success."""
    partial = dest.with_name(f".partial-{dest.name}")  # keeps the suffix tools check
    _remove(partial)
    try:
        yield partial
        _remove(dest)
        partial.rename(dest)
    finally:
        _remove(partial)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
