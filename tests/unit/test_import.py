import subprocess
import sys

BACKENDS = ["torch", "executorch", "onnx", "onnxruntime", "coremltools", "transformers",
            "torchao", "numpy"]


def test_import_edgekit_loads_no_backend():
    code = ("import sys, edgekit; "
            f"print([m for m in {BACKENDS!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_version_and_help_are_fast_paths():
    out = subprocess.run([sys.executable, "-m", "edgekit", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "edgekit 0.1.0"
