"""Bad input gets one clear line naming the file or setting, exit status 2, no traceback.

Most cases call the function that checks them; a handful run the installed console scripts
to show that the error reaches the user as `<program>: error: ...` and nothing else.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import DictConfig
from runner import files, rewrite
from runner import run_cli as run_in_process

from phonemlp.api import compose
from phonemlp.checkpoint import FORMAT, VERSION, load_checkpoint, save_checkpoint
from phonemlp.data.corpus import read_split
from phonemlp.data.demo import write_demo_corpus
from phonemlp.data.splits import corpus_root
from phonemlp.errors import PhonemlpError
from phonemlp.model import build_model, count_params
from phonemlp.phonemes import CLASSES, NUM_CLASSES
from phonemlp.prediction import predict
from phonemlp.runtime import resolve_device, resolve_precision

TRAIN, DEV = "train-clean-100", "dev-clean"
BIN = Path(sys.executable).parent
PROGRESS = re.compile(r"\d+%\|")  # a tqdm progress bar, drawn on stderr with \r


# --- helpers -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("errors") / "corpus"
    write_demo_corpus(root, seed=0, train_utterances=12, dev_utterances=4, test_utterances=4)
    return root


@pytest.fixture
def root(pristine: Path, tmp_path: Path) -> Path:
    """A private copy of the small corpus, free to break."""
    return Path(shutil.copytree(pristine, tmp_path / "corpus"))


def transcript_of(mfcc: Path) -> Path:
    return mfcc.parent.parent / "transcript" / mfcc.name


def refused(match: str) -> pytest.RaisesExc[PhonemlpError]:
    return pytest.raises(PhonemlpError, match=re.escape(match))


def config(*overrides: str, name: str = "config") -> DictConfig:
    """The composed config; its typed schema refuses bad settings here (phonemlp/config.py)."""
    return compose(name, overrides)


def run_cli(program: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / program), *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def train_cli(
    tmp_path: Path, *args: str, installed: bool = True
) -> subprocess.CompletedProcess[str]:
    """phonemlp-train as installed (Hydra's command line, its error path) or, where the
    problem is in the data, in this process with the same error handling (tests/runner.py)."""
    args = ("wandb.mode=disabled", f"hydra.run.dir={tmp_path / 'run'}", *args)
    if not installed:
        return run_in_process("phonemlp-train", *args, cwd=tmp_path, check=False)
    return run_cli("phonemlp-train", *args, cwd=tmp_path)


def error_line(proc: subprocess.CompletedProcess[str], program: str) -> str:
    """The one line a refused command printed; fails on a traceback, a wrong status or noise."""
    output = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stdout + proc.stderr, output
    assert proc.returncode == 2, output
    lines = [
        line.strip()
        for line in re.split(r"[\r\n]", proc.stderr)
        if line.strip() and not PROGRESS.search(line)
    ]
    assert len(lines) == 1, output
    assert lines[0].startswith(f"{program}: error: "), output
    return lines[0]


# --- the corpus: folders and file names ----------------------------------------------------


def test_missing_root(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with refused(str(missing)):
        read_split(missing, TRAIN)
    with refused(f"data.root={missing}"):
        corpus_root(str(missing))


def test_missing_split_folder(root: Path) -> None:
    shutil.rmtree(root / DEV)
    with refused(str(root / DEV)):
        read_split(root, DEV)


def test_missing_mfcc_folder(root: Path) -> None:
    shutil.rmtree(root / DEV / "mfcc")
    with refused(str(root / DEV / "mfcc")):
        read_split(root, DEV)


def test_split_without_npy_files(root: Path) -> None:
    for path in files(root, DEV):
        path.unlink()
    (root / DEV / "mfcc" / "README.txt").write_text("not data\n")
    with pytest.raises(PhonemlpError, match=r"no \.npy") as error:
        read_split(root, DEV)
    assert str(root / DEV / "mfcc") in str(error.value)


def test_other_files_in_the_folders_are_ignored(root: Path, pristine: Path) -> None:
    for kind in ("mfcc", "transcript"):
        (root / TRAIN / kind / ".DS_Store").write_bytes(b"\x00\x01")
        (root / TRAIN / kind / "README.txt").write_text("notes\n")
    (root / TRAIN / "mfcc" / ".hidden.npy").write_bytes(b"junk")
    assert (
        read_split(root, TRAIN, progress=False).names
        == read_split(pristine, TRAIN, progress=False).names
    )


@pytest.mark.parametrize("missing_from", ["transcript", "mfcc"])
def test_mfcc_and_transcript_names_must_match(root: Path, missing_from: str) -> None:
    lonely = files(root, TRAIN, missing_from)[3]
    lonely.unlink()
    other = "mfcc" if missing_from == "transcript" else "transcript"
    with refused(lonely.name) as error:
        read_split(root, TRAIN)
    assert f"{other}/" in str(error.value)


def test_renamed_transcript(root: Path) -> None:
    transcript = files(root, TRAIN, "transcript")[0]
    transcript.rename(transcript.with_name("renamed-000.npy"))
    with refused(transcript.name):
        read_split(root, TRAIN)


# --- transcripts -------------------------------------------------------------------------


def test_labels_are_the_transcript_symbols(pristine: Path) -> None:
    data = read_split(pristine, TRAIN, progress=False)
    for u in (0, len(data.names) - 1):
        symbols = np.load(pristine / TRAIN / "transcript" / f"{data.names[u]}.npy")[1:-1]
        labels = data.labels[data.offsets[u] : data.offsets[u + 1]]
        assert [CLASSES[i] for i in labels] == symbols.tolist()


def test_byte_string_transcripts_give_the_same_labels(root: Path, pristine: Path) -> None:
    for path in files(root, TRAIN, "transcript"):
        rewrite(path, lambda t: t.astype("S5"))
    expected = read_split(pristine, TRAIN, progress=False).labels
    np.testing.assert_array_equal(read_split(root, TRAIN, progress=False).labels, expected)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda t: np.delete(t, 1), id="one-short"),
        pytest.param(lambda t: np.insert(t, 1, "AH"), id="one-long"),
        pytest.param(lambda t: t[1:-1], id="no-sos-eos"),
    ],
)
def test_transcript_length_must_be_frames_plus_two(
    root: Path, change: Callable[[np.ndarray], np.ndarray]
) -> None:
    mfcc = files(root, TRAIN)[2]
    frames = np.load(mfcc).shape[0]
    rewrite(transcript_of(mfcc), change)
    symbols = len(np.load(transcript_of(mfcc)))
    with refused(transcript_of(mfcc).name) as error:
        read_split(root, TRAIN)
    message = str(error.value)
    assert str(frames) in message and str(symbols) in message


@pytest.mark.parametrize("position, marker", [(0, "[SOS]"), (-1, "[EOS]")])
def test_transcript_needs_sos_and_eos(root: Path, position: int, marker: str) -> None:
    transcript = files(root, TRAIN, "transcript")[1]

    def replace(t: np.ndarray) -> np.ndarray:
        t = t.copy()
        t[position] = "[SIL]"
        return t

    rewrite(transcript, replace)
    with refused(transcript.name) as error:
        read_split(root, TRAIN)
    assert marker in str(error.value)


@pytest.mark.parametrize("symbol", ["XX", "ah", "[SOS]", ""])
def test_unknown_symbol(root: Path, symbol: str) -> None:
    transcript = files(root, TRAIN, "transcript")[4]

    def replace(t: np.ndarray) -> np.ndarray:
        t = t.copy()
        t[6] = symbol  # the sixth frame's symbol (index 0 is [SOS])
        return t

    rewrite(transcript, replace)
    with refused(transcript.name) as error:
        read_split(root, TRAIN)
    assert f"'{symbol}'" in str(error.value)
    assert "frame 5" in str(error.value)


def test_object_dtype_transcript(root: Path) -> None:
    transcript = files(root, TRAIN, "transcript")[0]
    rewrite(transcript, lambda t: t.astype(object))
    with refused(transcript.name) as error:
        read_split(root, TRAIN)
    assert "pickle" in str(error.value).lower()


def test_two_dimensional_transcript(root: Path) -> None:
    transcript = files(root, TRAIN, "transcript")[0]
    rewrite(transcript, lambda t: t[:, None])
    with refused(transcript.name) as error:
        read_split(root, TRAIN)
    assert "1-D" in str(error.value)


# --- feature files -----------------------------------------------------------------------


def test_feature_dimension_differs_between_files(root: Path) -> None:
    odd = files(root, TRAIN)[5]
    rewrite(odd, lambda f: f[:, :27])
    with refused(odd.name) as error:
        read_split(root, TRAIN)
    assert "27" in str(error.value) and "28" in str(error.value)


def test_feature_dimension_differs_between_train_and_dev(root: Path, tmp_path: Path) -> None:
    """Each split is consistent on its own; training must still refuse the pair, up front."""
    for path in files(root, DEV):
        rewrite(path, lambda f: f[:, :27])
    proc = train_cli(
        tmp_path,
        f"data.root={root}",
        "model.depth=1",
        "model.width=16",
        "context=2",
        "epochs=1",
        "limit_batches=1",
        installed=False,
    )
    line = error_line(proc, "phonemlp-train")
    assert DEV in line and "27" in line and "28" in line
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.filterwarnings("error::RuntimeWarning")  # a warning would be a second stderr line
@pytest.mark.parametrize(
    "value", [np.nan, np.inf, -np.inf, 1e39], ids=["nan", "inf", "-inf", "big"]
)
def test_non_finite_features(root: Path, value: float) -> None:
    bad = files(root, TRAIN)[7]

    def spoil(f: np.ndarray) -> np.ndarray:
        f = f.astype(np.float64)
        f[3, 5] = value  # 1e39 overflows to inf as float32
        return f

    rewrite(bad, spoil)
    with refused(bad.name) as error:
        read_split(root, TRAIN)
    assert "NaN or Inf" in str(error.value)


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not a numpy file\n" * 20)


def _truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _header_cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:30])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _npz(path: Path) -> None:
    array = np.load(path)
    with open(path, "wb") as file:
        np.savez(file, array=array)


@pytest.mark.parametrize("kind", ["mfcc", "transcript"])
@pytest.mark.parametrize("spoil", [_garbage, _truncated, _header_cut, _empty, _npz])
def test_unreadable_npy(root: Path, kind: str, spoil: Callable[[Path], None]) -> None:
    bad = files(root, TRAIN, kind)[8]
    spoil(bad)
    with refused(bad.name) as error:
        read_split(root, TRAIN)
    message = str(error.value).lower()
    assert "pickle" not in message  # a damaged file is not mistaken for pickled objects
    assert any(word in message for word in ("unreadable", "not a .npy", ".npz"))


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda f: f.ravel(), id="1-D"),
        pytest.param(lambda f: f[:, :, None], id="3-D"),
    ],
)
def test_features_must_be_two_dimensional(
    root: Path, change: Callable[[np.ndarray], np.ndarray]
) -> None:
    bad = files(root, TRAIN)[1]
    rewrite(bad, change)
    with refused(bad.name) as error:
        read_split(root, TRAIN)
    assert "2-D" in str(error.value)


def test_integer_features(root: Path) -> None:
    bad = files(root, TRAIN)[1]
    rewrite(bad, lambda f: f.astype(np.int16))
    with refused(bad.name) as error:
        read_split(root, TRAIN)
    assert "floating point" in str(error.value)


def test_object_dtype_features(root: Path) -> None:
    bad = files(root, TRAIN)[1]
    rewrite(bad, lambda f: f.astype(object))
    with refused(bad.name) as error:
        read_split(root, TRAIN)
    assert "pickle" in str(error.value).lower()


# --- checkpoints -------------------------------------------------------------------------


class _Hostile:
    """Unpickling this runs a shell command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Callable[[str], int], tuple[str]]:
        return os.system, (self.command,)


def hostile_checkpoint(path: Path, marker: Path) -> Path:
    command = f"touch {shlex.quote(str(marker))}"
    payload = {"format": FORMAT, "version": VERSION, "model": _Hostile(command)}
    torch.save(payload, path)
    return path


def test_hostile_checkpoint_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    evil = hostile_checkpoint(tmp_path / "evil.pt", marker)
    with refused(str(evil)) as error:
        load_checkpoint(evil)
    assert "refused" in str(error.value)
    assert not marker.exists()
    torch.load(evil, weights_only=False)  # the file really is hostile: trusting it runs code
    assert marker.exists()


def _random_bytes(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(4096))


def _text(path: Path) -> None:
    path.write_text("Id,Label\n0,AH\n1,[SIL]\n")  # e.g. a submission CSV given as ckpt=


def _foreign_dict(path: Path) -> None:
    torch.save({"model": {"weight": torch.zeros(3)}, "epoch": 1}, path)


def _foreign_list(path: Path) -> None:
    torch.save([torch.zeros(3)], path)


def _half_of_ours(path: Path) -> None:
    save_checkpoint(path, {"model": {"weight": torch.zeros(10_000)}})
    _truncated(path)


def _from_the_future(path: Path) -> None:
    torch.save({"format": FORMAT, "version": VERSION + 1}, path)


@pytest.mark.parametrize(
    "make",
    [_random_bytes, _text, _empty, _foreign_dict, _foreign_list, _half_of_ours, _from_the_future],
)
def test_checkpoint_that_is_not_ours(tmp_path: Path, make: Callable[[Path], None]) -> None:
    path = tmp_path / "model.pt"
    make(path)
    with refused(str(path)) as error:
        load_checkpoint(path)
    assert "could run code" not in str(error.value)  # not mistaken for a hostile file


def test_our_checkpoint_loads(tmp_path: Path) -> None:
    path = tmp_path / "ours.pt"
    save_checkpoint(path, {"model": {"weight": torch.ones(3)}})
    assert torch.equal(load_checkpoint(path)["model"]["weight"], torch.ones(3))


def test_missing_checkpoint_and_empty_run_folder(tmp_path: Path) -> None:
    with refused(str(tmp_path / "missing.pt")):
        load_checkpoint(tmp_path / "missing.pt")
    with refused("checkpoints/best.pt"):
        load_checkpoint(tmp_path, name="best.pt")


def test_predict_to_a_missing_folder(tmp_path: Path) -> None:
    out = tmp_path / "no" / "such" / "folder" / "submission.csv"
    cfg = config(f"ckpt={tmp_path / 'model.pt'}", f"out={out}", name="predict")
    with refused(f"out={out}"):
        predict(cfg)
    assert not out.parent.exists()


# --- settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "override",
    ["context=51", "context=-1", "batch_size=0", "epochs=0", "eval_batch_size=-8"],
)
def test_top_level_setting_out_of_range(override: str) -> None:
    with refused(override):
        config(override)


@pytest.mark.parametrize(
    "override",
    ["model.activation=foo", "model.norm=foo", "scheduler.name=foo", "wandb.mode=foo",
     "data.placement=foo", "augment.warp_max=0.7", "model.dropout=1.0", "ema=1.5"],
)  # fmt: skip
def test_setting_refused_by_the_schema_names_its_key(override: str) -> None:
    key, value = override.split("=")
    with refused(key) as error:
        config(override)
    assert value in str(error.value)


def test_wrong_type_or_unknown_key_is_one_config_line() -> None:
    from phonemlp.errors import user_error_message

    for override in ("context=abc", "model.widht=3", "data.fraction=[1]"):
        with pytest.raises(Exception) as error:
            config(override)
        message = user_error_message(error.value)
        assert message is not None and "\n" not in message and override.split("=")[0] in message


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu() -> None:
    with refused("device=cuda"):
        resolve_device(config("device=cuda").device)


def test_fp16_on_cpu() -> None:
    with refused("precision=fp16"):
        resolve_precision(config("precision=fp16").precision, torch.device("cpu"))


@pytest.mark.parametrize("fraction", ["0", "1.5", "-0.1"])
def test_data_fraction_out_of_range(pristine: Path, fraction: str) -> None:
    with refused(f"data.fraction={float(fraction)}"):
        config(f"data.fraction={fraction}")


def test_data_normalize_unknown(pristine: Path) -> None:
    with refused("data.normalize") as error:
        config("data.normalize=foo")
    assert "foo" in str(error.value)


def test_model_over_max_params_is_refused_before_it_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = config("model.width=4096", "model.depth=3", "context=50")
    input_dim = (2 * cfg.context + 1) * 28
    params = count_params(input_dim, [4096] * 3, NUM_CLASSES, cfg.model.norm)
    assert params > cfg.model.max_params

    def must_not_build(*args: object, **kwargs: object) -> None:
        raise AssertionError("the oversized model was built before it was refused")

    monkeypatch.setattr("phonemlp.model.MLP", must_not_build)
    with refused("model.max_params") as error:
        build_model(cfg.model, input_dim, NUM_CLASSES)
    assert f"{params:,}" in str(error.value)


# --- through the console scripts -----------------------------------------------------------


def test_cli_missing_root(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    proc = train_cli(tmp_path, f"data.root={missing}", installed=False)
    line = error_line(proc, "phonemlp-train")
    assert f"data.root={missing}" in line


def test_cli_name_mismatch(root: Path, tmp_path: Path) -> None:
    lonely = files(root, DEV, "transcript")[0]
    lonely.unlink()
    line = error_line(train_cli(tmp_path, f"data.root={root}", installed=False), "phonemlp-train")
    assert lonely.name in line and str(root / DEV) in line


def test_cli_bad_transcript_length(root: Path, tmp_path: Path) -> None:
    transcript = files(root, TRAIN, "transcript")[-1]
    rewrite(transcript, lambda t: np.delete(t, 1))
    line = error_line(train_cli(tmp_path, f"data.root={root}", installed=False), "phonemlp-train")
    assert str(transcript) in line


def test_cli_bad_setting(root: Path, tmp_path: Path) -> None:
    line = error_line(train_cli(tmp_path, f"data.root={root}", "context=51"), "phonemlp-train")
    assert "context=51" in line


def test_cli_model_over_max_params(root: Path, tmp_path: Path) -> None:
    proc = train_cli(
        tmp_path, f"data.root={root}", "model.width=4096", "model.depth=3", "context=50"
    )
    line = error_line(proc, "phonemlp-train")
    params = count_params(101 * 28, [4096] * 3, NUM_CLASSES)
    assert f"{params:,}" in line and "model.max_params" in line
    assert "epoch 1/" not in proc.stdout
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_cli_predict_refuses_a_hostile_checkpoint(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    evil = hostile_checkpoint(tmp_path / "evil.pt", marker)
    out = tmp_path / "submission.csv"
    proc = run_cli("phonemlp-predict", f"ckpt={evil}", f"out={out}", cwd=tmp_path)
    line = error_line(proc, "phonemlp-predict")
    assert str(evil) in line and "refused" in line
    assert not marker.exists() and not out.exists()


@pytest.mark.parametrize("program", ["phonemlp-bench", "phonemlp-data", "phonemlp-train"])
def test_help_into_a_closed_pipe_ends_quietly(program: str, tmp_path: Path) -> None:
    """`PROGRAM --help | head -1`: no BrokenPipeError traceback when the reader stops early."""
    done = subprocess.run(
        f"{shlex.quote(str(BIN / program))} --help | head -c 1",
        shell=True,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert len(done.stdout) == 1
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
