"""Students: loading, task wrappers and in-distribution example inputs."""

from edgekit.model.load import BUILTIN, load
from edgekit.model.samples import sample_inputs
from edgekit.model.student import Student, TensorSpec
from edgekit.model.tasks import TASKS

__all__ = ["BUILTIN", "TASKS", "Student", "TensorSpec", "load", "sample_inputs"]
