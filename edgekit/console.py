"""What edgekit prints: stage progress on stderr, and backends kept quiet.

Backends (torch.export, ExecuTorch, coremltools, ONNX Runtime, torchao) print progress bars,
warnings and C++ log lines of their own. edgekit's output is its own: backend output is
captured at the file-descriptor level and only shown when the backend fails.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

_VERBOSE = os.environ.get("EDGEKIT_VERBOSE", "") not in ("", "0")


def say(message: str) -> None:
    """Print one progress line on stderr."""
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def stage(title: str) -> Iterator[None]:
    """Print `title ...` before a long step and `done (N s)` after it."""
    start = time.perf_counter()
    say(f"[edgekit] {title} ...")
    yield
    say(f"[edgekit] {title}: done ({time.perf_counter() - start:.1f} s)")


def progress(items: Sequence[T], title: str, every_s: float = 10.0) -> Iterator[T]:
    """Yield `items`, printing `title: i/n` at most every `every_s` seconds, and at the end."""
    start = last = time.perf_counter()
    for index, item in enumerate(items, start=1):
        yield item
        now = time.perf_counter()
        if now - last >= every_s or index == len(items):
            say(f"[edgekit] {title}: {index}/{len(items)} ({now - start:.0f} s)")
            last = now


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence backend output (Python and C++) for the duration; keep it if an error escapes.

    With EDGEKIT_VERBOSE=1 nothing is silenced.
    """
    if _VERBOSE:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        previous_disable = logging.root.manager.disable
        logging.disable(logging.WARNING)
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            logging.disable(previous_disable)
            if failed and os.environ.get("EDGEKIT_DEBUG"):
                sink.seek(0)
                sys.stderr.write(sink.read().decode(errors="replace")[-4000:])


def import_backend(name: str) -> Any:
    """Import a backend module with its import-time noise silenced (torchao's .so lines)."""
    with quiet():
        return importlib.import_module(name)
