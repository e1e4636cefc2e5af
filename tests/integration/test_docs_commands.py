"""Every `edgekit ...` command in a ```bash block of README.md and docs/ runs as written, on tiny
students, so a stale command fails CI.

How the docs are written for this (docs/README.md says the same to authors):
- ```bash blocks hold commands a reader can type; synopses and program output go in ```text.
- Each page runs top to bottom in a fresh folder, so a later command may use what an earlier
  one wrote (`edgekit export ... --out out/`, then `edgekit bundle out/ ...`).
- A command that should exit with a code other than 0 says so in a comment: `# exits 1`.
- The files a page names are made here (FIXTURES): `my-student/` is a tiny Llama-style
  decoder, `encoder/` a tiny BERT, `model.gguf` a tiny GGUF decoder, and so on.
- The built-in student (no `--model`, or `--model smollm2-135m`) is SmolLM2-135M, minutes
  per export: commands that load it get `--set model.path=<a tiny GGUF of the same name>`
  appended, which wins over everything before it.
- Besides `edgekit`, only `cp`, `mkdir` and `mv` run; other commands (pip, npm, cd) are a
  reader's set-up and are left out. `> FILE` after a command writes its stdout there.
- An export command already run, word for word, on an earlier page is not run again: its
  output folder is copied (exports cost most of this test's time, and the README, the guide
  and the CLI reference open with the same ones).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import students
import torch

ROOT = Path(__file__).parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
RUNNABLE = {"bash", "sh", "shell"}
SHELL_COMMANDS = {"cp", "mkdir", "mv"}
EXPECTED_EXIT = re.compile(r"#\s*exits?\s+(\d+)")
BUILTIN = "smollm2-135m"
LOADS_A_STUDENT = {"export", "check"}


@dataclass(frozen=True)
class Command:
    """One command of a page: where it is written, its words, the file its stdout goes to
    (`> FILE`), and the exit code it expects."""

    page: Path
    line: int
    argv: tuple[str, ...]
    exit_code: int = 0
    stdout: str | None = None

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}: {shlex.join(self.argv)}"


def page_commands(page: Path) -> list[Command]:
    """The runnable commands of a page, in order: `\\` continuations joined, `&&` chains
    split, comments dropped (a trailing `# exits N` sets the expected exit code)."""
    text = page.read_text()
    commands: list[Command] = []
    for fence in FENCE.finditer(text):
        if fence.group(1) not in RUNNABLE:
            continue
        first_line = text.count("\n", 0, fence.start(2)) + 1
        for offset, logical in _logical_lines(fence.group(2)):
            expected = EXPECTED_EXIT.search(logical)
            for segment in _segments(logical):
                stdout = None
                if len(segment) > 2 and segment[-2] == ">":
                    segment, stdout = segment[:-2], segment[-1]
                if segment and (segment[0] == "edgekit" or segment[0] in SHELL_COMMANDS):
                    commands.append(Command(page, first_line + offset, tuple(segment),
                                            int(expected.group(1)) if expected else 0, stdout))
    return commands


def _logical_lines(block: str) -> list[tuple[int, str]]:
    lines, start, pending = [], 0, ""
    for number, line in enumerate(block.splitlines()):
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        lines.append((start, pending + line))
        pending = ""
    return lines


def _segments(line: str) -> list[list[str]]:
    words = shlex.split(line, comments=True)
    segments: list[list[str]] = [[]]
    for word in words:
        if word in ("&&", ";", "||"):
            segments.append([])
        else:
            segments[-1].append(word)
    return segments


def test_the_docs_have_commands_to_run():
    """The extraction finds the commands the README and the CLI reference are built around."""
    found = {str(c.argv[:2]) for page in PAGES for c in page_commands(page)}
    for name in ("export", "run", "check", "report", "bundle", "generate", "devices", "bench",
                 "targets", "validate"):
        assert str(("edgekit", name)) in found, f"no ```bash example of `edgekit {name}`"


# Files the pages name, made once per session; each page's folder links or copies them.
def _decoder(folder: Path) -> Path:
    return students.tiny_llama(folder)


def _encoder(folder: Path) -> Path:
    return students.tiny_bert(folder)


def _gguf(folder: Path) -> Path:
    from gguf_student import tiny_gguf

    folder.mkdir(parents=True)
    return tiny_gguf(folder / "model.gguf")


def _pt2(folder: Path) -> Path:
    torch.manual_seed(0)
    cnn = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 10)).eval()
    folder.mkdir(parents=True)
    program = torch.export.export(cnn, (torch.randn(1, 3, 32, 32),))
    torch.export.save(program, folder / "program.pt2")
    return folder / "program.pt2"


def _calib(folder: Path) -> Path:
    folder.mkdir(parents=True)
    lines = ["What is the capital of France?", "Write a haiku about the sea.",
             "Explain photosynthesis in one sentence.", "List three prime numbers."]
    path = folder / "chats.jsonl"
    path.write_text("".join(f'{{"text": "{line}"}}\n' for line in lines))
    return path


def _inputs(folder: Path) -> Path:
    folder.mkdir(parents=True)
    ids = np.random.default_rng(0).integers(0, 256, size=(2, 1, 64), dtype=np.int64)
    np.savez(folder / "in.npz", input_ids=ids)
    return folder / "in.npz"


def _ids(folder: Path) -> Path:
    """One sample of 64 token ids, as `edgekit run` takes it (no leading sample axis)."""
    folder.mkdir(parents=True)
    np.savez(folder / "ids.npz", input_ids=np.zeros((1, 64), dtype=np.int64))
    return folder / "ids.npz"


FOLDERS = {"my-student", "encoder"}
FIXTURES: dict[str, Callable[[Path], Path]] = {
    "my-student": _decoder, "encoder": _encoder, "model.gguf": _gguf, "ids.npz": _ids,
    "program.pt2": _pt2, "chats.jsonl": _calib, "in.npz": _inputs,
}


@pytest.fixture(scope="session")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("docs-fixtures")
    # Each in a folder of its own under its own name: a student's name in file names comes
    # from its resolved path, and the pages link to these.
    made = {name: make(root / name if name in FOLDERS else root / f"{name}.d")
            for name, make in FIXTURES.items()}
    standin = root / "builtin" / f"{BUILTIN}.gguf"
    standin.parent.mkdir()
    shutil.copy(made["model.gguf"], standin)
    made[BUILTIN] = standin
    return made


def _lay_out(folder: Path, fixtures: dict[str, Path]) -> None:
    for name, path in fixtures.items():
        if name == BUILTIN:
            continue
        (folder / name).symlink_to(path, target_is_directory=path.is_dir())
    (folder / "docs" / "examples").mkdir(parents=True)
    for example in (ROOT / "docs" / "examples").iterdir():
        shutil.copy(example, folder / "docs" / "examples" / example.name)
    shutil.copy(ROOT / "docs" / "examples" / "edgekit.toml", folder / "edgekit.toml")


def _argv(command: Command, builtin: Path) -> list[str]:
    argv = list(command.argv[1:])
    if argv and argv[0] in LOADS_A_STUDENT and _uses_builtin(argv):
        argv += ["--set", f"model.path='{builtin}'"]
    return argv


def _uses_builtin(argv: list[str]) -> bool:
    if "--model" in argv:
        return argv[argv.index("--model") + 1] == BUILTIN
    sets = [argv[i + 1] for i, word in enumerate(argv[:-1]) if word == "--set"]
    models = [s.split("=", 1)[1] for s in sets if s.startswith(("model=", "model.path="))]
    return not models or models[-1].strip("'\"") in (BUILTIN, "$EDGEKIT_MODEL")


def _run(command: Command, builtin: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run one command in the current folder: edgekit in this process (as `edgekit.cli.main`,
    which the console script calls; one import of the backends for the whole session)."""
    if command.argv[0] in SHELL_COMMANDS:
        done = subprocess.run(list(command.argv), capture_output=True, text=True)
        return done.returncode, done.stderr
    from edgekit.cli import main

    capsys.readouterr()
    try:
        code = main(_argv(command, builtin))
    except SystemExit as exc:  # argparse: --help, or a usage error (exit 2)
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    if command.stdout:
        Path(command.stdout).write_text(captured.out)
    return code, (captured.err + captured.out)[-3000:]


class ExportCache:
    """What each export command wrote (the new entries of the page's folder), by its words,
    so that the same command on a later page gets a copy instead of a second run."""

    def __init__(self, root: Path) -> None:
        self.root, self.made = root, {}

    @staticmethod
    def applies(command: Command) -> bool:
        return command.argv[:2] == ("edgekit", "export") and "--force" not in command.argv

    def restore(self, command: Command, folder: Path) -> bool:
        saved = self.made.get(command.argv)
        if saved is None or any((folder / p.name).exists() for p in saved.iterdir()):
            return False
        for entry in saved.iterdir():
            shutil.copytree(entry, folder / entry.name, symlinks=True)
        return True

    def save(self, command: Command, folder: Path, before: set[str]) -> None:
        saved = self.root / str(len(self.made))
        saved.mkdir()
        for name in sorted({p.name for p in folder.iterdir()} - before):
            shutil.copytree(folder / name, saved / name, symlinks=True)
        self.made[command.argv] = saved


@pytest.fixture(scope="session")
def export_cache(tmp_path_factory: pytest.TempPathFactory) -> ExportCache:
    return ExportCache(tmp_path_factory.mktemp("docs-exports"))


@pytest.mark.parametrize("page", [p for p in PAGES if page_commands(p)],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_of_the_page_runs(page: Path, fixtures, export_cache: ExportCache,
                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]):
    """The page's commands, in order, in one fresh folder, each with its expected exit code."""
    _lay_out(tmp_path, fixtures)
    monkeypatch.chdir(tmp_path)
    for command in page_commands(page):
        cached = ExportCache.applies(command) and command.exit_code == 0
        if cached and export_cache.restore(command, tmp_path):
            continue
        before = {p.name for p in tmp_path.iterdir()}
        code, output = _run(command, fixtures[BUILTIN], capsys)
        assert code == command.exit_code, f"{command}\nexit {code}:\n{output}"
        if cached:
            export_cache.save(command, tmp_path, before)


def test_every_fence_says_what_it_holds():
    """A fence without a language is ambiguous: commands to run are ```bash, synopses and
    output ```text, so the command test above knows which is which."""
    unlabelled = [f"{page.relative_to(ROOT)}:{page.read_text().count(chr(10), 0, m.start()) + 1}"
                  for page in PAGES for m in FENCE.finditer(page.read_text()) if not m.group(1)]
    assert not unlabelled, f"label these fences (```bash, ```text, ...): {unlabelled}"
