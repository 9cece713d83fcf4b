"""phonemlp-data check / prepare on generated corpora, clean and with planted faults."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from runner import files, rewrite

from phonemlp import data_cli
from phonemlp.corpus_check import class_table
from phonemlp.data import cache
from phonemlp.data.corpus import read_split
from phonemlp.data.demo import write_demo_corpus
from phonemlp.data.splits import Preparation, load_split
from phonemlp.phonemes import NUM_CLASSES

TRAIN, DEV, TEST = "train-clean-100", "dev-clean", "test-clean"
BIN = Path(sys.executable).parent
PROGRESS = re.compile(r"\d+%\|")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data_cli") / "corpus"
    write_demo_corpus(root, seed=2, train_utterances=10, dev_utterances=4, test_utterances=3)
    return root


@pytest.fixture
def root(pristine: Path, tmp_path: Path) -> Path:
    """A private copy of the corpus, free to break."""
    return Path(shutil.copytree(pristine, tmp_path / "corpus"))


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, list[str]]:
    """Exit status, stdout and the stderr lines (progress bars left out) of phonemlp-data."""
    try:
        data_cli.main(list(args))
        code = 0
    except SystemExit as stop:
        code = int(stop.code or 0)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    errors = [
        line.strip()
        for line in re.split(r"[\r\n]", captured.err)
        if line.strip() and not PROGRESS.search(line)
    ]
    return code, captured.out, errors


# --- check -------------------------------------------------------------------------------


def test_check_a_clean_corpus(pristine: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, errors = run(capsys, "check", str(pristine))
    assert code == 0 and errors == [], out
    for split, labelled in ((TRAIN, True), (DEV, True), (TEST, False)):
        data = read_split(pristine, split, labelled=labelled, progress=False)
        block = out.split(f"== {split} ")[1].split("\n== ")[0]
        lengths = data.lengths
        assert re.search(rf"utterances\s+{len(data.names)}\n", block)
        assert re.search(rf"frames\s+{data.frames:,}\n", block)
        assert re.search(r"feature dim\s+28\n", block)
        figures = f"{lengths.min():,} / {np.median(lengths):,.0f} / {lengths.max():,}"
        assert figures in block
        assert "problems: none" in block
        assert ("class frequencies" in block) == labelled
    assert out.rstrip().endswith("no problems found")


def test_check_lists_every_planted_fault(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mfcc, transcripts = files(root, TRAIN), files(root, TRAIN, "transcript")
    transcripts[0].unlink()  # mismatched names
    rewrite(transcripts[1], lambda t: np.delete(t, 1))  # transcript one symbol short
    rewrite(transcripts[2], lambda t: np.where(np.arange(len(t)) == 4, "XX", t))
    rewrite(mfcc[3], lambda f: np.where(np.arange(len(f))[:, None] == 2, np.nan, f))
    rewrite(mfcc[4], lambda f: f[:, :27])  # a different feature dimension
    dev_transcript = files(root, DEV, "transcript")[0]
    rewrite(dev_transcript, lambda t: t[1:])  # no [SOS]

    code, out, errors = run(capsys, "check", f"root={root}", "progress=false")
    assert code == 2
    assert errors == [f"phonemlp-data: error: {root}: 6 problem(s) found (listed above)"]
    problems = [line for line in out.splitlines() if line.startswith("  - ")]
    assert len(problems) == 6, out
    planted = {
        transcripts[0].name: "no counterpart",
        transcripts[1].name: "frames + 2",
        transcripts[2].name: "'XX'",
        mfcc[3].name: "NaN",
        mfcc[4].name: "dimension 27 differs from 28",
        dev_transcript.name: "[SOS]",
    }
    for name, what in planted.items():
        assert any(name in line and what in line for line in problems), (name, out)
    assert "== test-clean (unlabelled) ==" in out  # the other splits were checked too


def test_check_feature_dimensions_across_splits(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for path in files(root, DEV):
        rewrite(path, lambda f: f[:, :27])
    code, out, _ = run(capsys, "check", str(root))
    assert code == 2
    assert re.search(rf"splits' feature dimensions differ \({TRAIN} 28, {DEV} 27", out)


def test_check_missing_split_and_unreadable_files(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.rmtree(root / TEST)
    garbage = files(root, DEV)[1]
    garbage.write_bytes(b"not numpy at all\n")
    code, out, errors = run(capsys, "check", str(root))
    assert code == 2 and "2 problem(s)" in errors[0]
    assert f"{root / TEST}: split folder not found" in out
    assert garbage.name in out and "not a .npy file" in out


def test_rare_and_absent_classes_are_flagged() -> None:
    counts = np.full(NUM_CLASSES, 1000)
    counts[1], counts[2] = 3, 0  # AA rare, AE absent
    table = class_table(counts, rare=0.001)
    assert re.search(r"\bAA\s+3\s+0\.01%\s+rare\b", table)
    assert re.search(r"\bAE\s+0\s+0\.00%\s+absent\b", table)
    assert re.search(r"\bAH\s+1,000\s+2\.63%(?!\s+(rare|absent))", table)
    assert len(re.findall(r"\brare\b|\babsent\b", table)) == 2


def test_check_a_missing_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, errors = run(capsys, "check", str(tmp_path / "nowhere"))
    assert code == 2 and len(errors) == 1 and "data root not found" in errors[0]


# --- prepare -----------------------------------------------------------------------------


def test_prepare_builds_what_training_then_loads(
    pristine: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    folder = tmp_path / "prepared"
    code, out, errors = run(capsys, "prepare", str(pristine), f"data.cache_dir={folder}")
    assert code == 0 and errors == [], out
    assert len([p for p in folder.iterdir() if not p.name.startswith(".")]) == 3
    for split in (TRAIN, DEV, TEST):
        assert f"{split}: " in out

    def must_not_build(*args: object, **kwargs: object) -> None:
        raise AssertionError("the prepared split was built again")

    monkeypatch.setattr(cache, "_write_prepared", must_not_build)
    with initialize_config_module(config_module="phonemlp.conf", version_base="1.3"):
        data_cfg = compose("config").data
    how = Preparation.of(data_cfg, cache=True, cache_dir=folder, progress=False)
    for split, labelled in ((TRAIN, True), (DEV, True), (TEST, False)):
        data, _ = load_split(pristine, split, how, labelled)
        assert isinstance(data.features, np.memmap)


def test_prepare_defaults_are_the_training_defaults() -> None:
    from phonemlp.api import compose as compose_config

    assert compose_config("data_prepare").data == compose_config("config").data


def test_prepare_other_storage_and_a_bad_corpus(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "prepared"
    code, out, _ = run(capsys, "prepare", str(root), "dtype=float16", f"cache_dir={folder}")
    assert code == 0 and "float16" in out
    code, _, errors = run(capsys, "prepare", str(root), "dtype=float64", f"cache_dir={folder}")
    assert code == 2 and len(errors) == 1 and "float64" in errors[0]
    bad = files(root, DEV)[0]
    rewrite(bad, lambda f: np.where(np.arange(len(f))[:, None] == 0, np.inf, f))
    code, _, errors = run(capsys, "prepare", str(root), f"cache_dir={folder}")
    assert code == 2 and len(errors) == 1 and bad.name in errors[0]


# --- usage -------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["download", "check", "prepare"])
def test_each_command_explains_itself(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, command, "--help")
    assert code == 0 and out.startswith(f"usage: phonemlp-data {command}")


def test_console_scripts_help() -> None:
    for program in ("phonemlp-data", "phonemlp-submit"):
        proc = subprocess.run(
            [str(BIN / program), "--help"], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0 and proc.stdout.startswith(f"usage: {program}"), proc.stderr


def test_usage_errors(pristine: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for args, expected in (
        ((), "a command is required"),
        (("fetch",), "unknown command 'fetch'"),
        (("check", str(pristine), "colour=red"), "'colour'"),
        (("check", str(pristine), str(pristine)), "unexpected argument"),
        (("check",), "root is required"),
    ):
        code, _, errors = run(capsys, *args)
        assert code == 2 and len(errors) == 1 and expected in errors[0], (args, errors)


def test_options_are_typed_by_the_schema(
    pristine: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every command parses key=value the way phonemlp-train does (Hydra's grammar onto a
    typed schema): a wrong type or an unknown key is one line naming the key."""
    from phonemlp.cli import command_config

    options = command_config("phonemlp-data check", "data_check", [str(pristine), "rare=0.05"],
                             positional="root")  # fmt: skip
    assert (options.root, options.rare, options.progress) == (str(pristine), 0.05, True)
    for args, key in ((("rare=often",), "rare"), (("data.rooot=/x",), "data.rooot")):
        code, _, errors = run(capsys, "check", str(pristine), *args)
        assert code == 2 and len(errors) == 1 and key in errors[0], errors
