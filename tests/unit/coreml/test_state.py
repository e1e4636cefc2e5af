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


def test_fp16_state_rounds_what_is_written_in_both_modes(save_program) -> None:
    """A state is fp16 memory on every compute unit: in fp32 mode the program computes in
    float32, but what it keeps across runs is rounded to fp16 (1 + 2**-12 is not an fp16)."""
    @mb.program(input_specs=[mb.TensorSpec((1,), dtype=types.fp32),
                             mb.StateTensorSpec((1,), dtype=types.fp16)],
                opset_version=ct.target.iOS18)
    def program(x, cache):
        stored = mb.coreml_update_state(state=cache, value=mb.cast(x=x, dtype="fp16"))
        return mb.add(x=mb.cast(x=stored, dtype="fp32"), y=np.float32(0.0), name="out")

    x = np.array([1 + 2**-12], dtype=np.float32)
    for precision in ("fp32", "fp16"):
        session = CoreMLEmulatorSession(save_program(program), precision)
        session.run({"x": x})
        assert session.states["cache"].tolist() == [1.0]


def test_concat_of_scalars_builds_a_vector(save_program) -> None:
    """coremltools concatenates scalar positions into slice bounds (a KV cache write at a
    dynamic position)."""
    @mb.program(input_specs=[mb.TensorSpec((2,), dtype=types.int32)],
                opset_version=ct.target.iOS18)
    def program(x):
        first = mb.slice_by_index(x=x, begin=[0], end=[1], squeeze_mask=[True])
        bounds = mb.concat(values=[np.int32(7), first], axis=0)
        return mb.add(x=bounds, y=np.int32(0), name="out")

    session = CoreMLEmulatorSession(save_program(program), "fp32")
    assert session.run({"x": np.array([3, 4], np.int32)})["out"].tolist() == [7, 3]
