"""Stateful programs (KV caches): read_state / coreml_update_state in real saved packages.
States start at zero, as a fresh MLState, and keep their value from one run to the next."""

from __future__ import annotations

import numpy as np

from edgekit.console import import_backend
from edgekit.runtimes.coreml import CoreMLEmulatorSession

ct = import_backend("coremltools")
mb = import_backend("coremltools.converters.mil").Builder
types = import_backend("coremltools.converters.mil.mil.types")


def test_state_accumulates_across_runs_and_resets(save_program) -> None:
    @mb.program(input_specs=[mb.TensorSpec((2, 3), dtype=types.fp16),
                             mb.StateTensorSpec((2, 3), dtype=types.fp16)],
                opset_version=ct.target.iOS18)
    def program(x, cache):
        total = mb.add(x=mb.read_state(input=cache), y=x)
        stored = mb.coreml_update_state(state=cache, value=total)
        return mb.mul(x=stored, y=np.float16(2.0), name="out")

    session = CoreMLEmulatorSession(save_program(program, "fp16"), "fp16")
    assert session.input_names == ("x",) and session.output_names == ("out",)
    x = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float16)
    assert session.run({"x": x})["out"].tolist() == [[2, 4, 6], [8, 10, 12]]  # 2 * (0 + x)
    assert session.run({"x": x})["out"].tolist() == [[4, 8, 12], [16, 20, 24]]  # 2 * (x + x)
    assert session.states["cache"].tolist() == [[2, 4, 6], [8, 10, 12]]
    session.reset_states()
    assert session.states["cache"].tolist() == [[0, 0, 0], [0, 0, 0]]
    assert session.run({"x": x})["out"].tolist() == [[2, 4, 6], [8, 10, 12]]


def test_kv_cache_write_at_a_position_with_slice_update(save_program) -> None:
    @mb.program(input_specs=[mb.TensorSpec((1, 1), dtype=types.fp16),
                             mb.TensorSpec((2,), dtype=types.int32),
                             mb.StateTensorSpec((1, 4), dtype=types.fp16)],
                opset_version=ct.target.iOS18)
    def program(value, position, cache):
        end = mb.add(x=position, y=np.array([1, 1], dtype=np.int32))
        updated = mb.slice_update(x=mb.read_state(input=cache), update=value,
                                  begin=position, end=end)
        stored = mb.coreml_update_state(state=cache, value=updated)
        return mb.reduce_sum(x=stored, axes=[1], name="total")

    session = CoreMLEmulatorSession(save_program(program, "fp16"), "fp32")
    first = session.run({"value": np.array([[1.5]], np.float16),
                         "position": np.array([0, 0], np.int32)})
    assert first["total"].tolist() == [1.5]
    second = session.run({"value": np.array([[2.0]], np.float16),
                          "position": np.array([0, 2], np.int32)})
    assert second["total"].tolist() == [3.5]
    assert session.states["cache"].tolist() == [[1.5, 0, 2, 0]]
