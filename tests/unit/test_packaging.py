import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).parents[2]


def test_wheel_ships_targets_and_corpus(tmp_path: Path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(tmp_path), str(REPO)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("edgekit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.name for p in (REPO / "targets").glob("*.toml")}
    assert {f"edgekit/_targets/{n}" for n in shipped} <= names
    assert "edgekit/data/corpus.txt" in names
    assert any(n.endswith("entry_points.txt") for n in names)


def test_targets_command_lists_every_target():
    out = subprocess.run([sys.executable, "-m", "edgekit", "targets"], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert [line.split()[0] for line in out] == ["android", "ios", "web"]
    assert "coreml, executorch" in out[1]
