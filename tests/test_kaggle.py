"""The Kaggle round trip with the API replaced at its boundary (no network is needed).

`phonemlp.kaggle_api.create_api` is the one place the real `KaggleApi` is made; the tests
put a fake in its place that serves a zip of a generated corpus and records submissions.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import requests
from hydra import compose, initialize_config_module
from runner import TINY, train_run

from phonemlp import data_cli, kaggle_api, submit
from phonemlp.data.corpus import read_split
from phonemlp.data.demo import write_demo_corpus
from phonemlp.errors import PhonemlpError
from phonemlp.kaggle_api import DEFAULT_COMPETITION, MARKER, STAGING
from phonemlp.prediction import predict, write_submission
from phonemlp.submission import count_frames, validate_submission

BIN = Path(sys.executable).parent
SECRET = "planted0kaggle0key0e3b1c4d5"  # must never appear in any output or file
PROGRESS = re.compile(r"\d+%\|")


# --- helpers -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kaggle") / "corpus"
    write_demo_corpus(root, seed=1, train_utterances=8, dev_utterances=3, test_utterances=3)
    return root


@pytest.fixture(scope="module")
def archive(small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The corpus zipped as Kaggle serves it: everything under one top-level folder."""
    path = tmp_path_factory.mktemp("served") / "served.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zipped:
        for file in sorted(small.rglob("*")):
            if file.is_file():
                zipped.write(file, f"11785-s25-hw1p2/{file.relative_to(small)}")
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home folder without any Kaggle credentials."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    for name in [name for name in os.environ if name.startswith("KAGGLE_")]:
        monkeypatch.delenv(name)
    return home


@pytest.fixture
def credentials(home: Path) -> Path:
    """~/.kaggle/kaggle.json with a planted key."""
    path = home / ".kaggle" / "kaggle.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"username": "student", "key": SECRET}))
    path.chmod(0o600)
    return path


class FakeApi:
    """Stands in for KaggleApi: same method names and parameters, no network."""

    def __init__(self, archive: Path | None = None, error: BaseException | None = None) -> None:
        self.archive = archive
        self.error = error
        self.cut_downloads = 0  # how many downloads to cut in half (an interrupted transfer)
        self.answer = "Successfully submitted to the competition"
        self.downloads: list[tuple[str, bool]] = []
        self.submissions: list[tuple[str, str, str]] = []

    def competition_download_files(
        self, competition: str, path: str | None = None, force: bool = False, quiet: bool = True
    ) -> None:
        self.downloads.append((competition, force))
        if self.error is not None:
            raise self.error
        data = self.archive.read_bytes()
        if self.cut_downloads:
            self.cut_downloads -= 1
            data = data[: len(data) // 2]
        (Path(path) / f"{competition}.zip").write_bytes(data)

    def competition_submit(
        self, file_name: str, message: str, competition: str, quiet: bool = False
    ) -> SimpleNamespace:
        if self.error is not None:
            raise self.error
        self.submissions.append((file_name, message, competition))
        return SimpleNamespace(message=self.answer)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, archive: Path) -> FakeApi:
    api = FakeApi(archive)
    monkeypatch.setattr(kaggle_api, "create_api", lambda: api)
    return api


def run_main(main: Callable[[list[str]], None], *args: str) -> int:
    try:
        main(list(args))
    except SystemExit as stop:
        return int(stop.code or 0)
    return 0


def one_line(capsys: pytest.CaptureFixture[str], program: str) -> str:
    """The single error line a refused command wrote on stderr (progress bars aside)."""
    captured = capsys.readouterr()
    output = f"stdout:\n{captured.out}\nstderr:\n{captured.err}"
    assert "Traceback" not in captured.out + captured.err, output
    assert SECRET not in captured.out + captured.err, output
    lines = [
        line.strip()
        for line in re.split(r"[\r\n]", captured.err)
        if line.strip() and not PROGRESS.search(line)
    ]
    assert len(lines) == 1 and lines[0].startswith(f"{program}: error: "), output
    return lines[0]


def http_error(status: int, message: str) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(message, response=response)


def same_tree(a: Path, b: Path) -> bool:
    def listing(root: Path) -> dict[str, bytes]:
        return {
            str(p.relative_to(root)): p.read_bytes()
            for p in root.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        }

    return listing(a) == listing(b)


# --- credentials -------------------------------------------------------------------------


def test_missing_credentials_is_one_line_saying_where_they_go(home: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    root = tmp_path / "data"
    proc = subprocess.run(
        [str(BIN / "phonemlp-data"), "download", f"root={root}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for source in ("KAGGLE_API_TOKEN", "~/.kaggle/access_token", "~/.kaggle/kaggle.json"):
        assert source in lines[0]
    assert "KAGGLE_USERNAME" in lines[0] and "KAGGLE_KEY" in lines[0]
    assert "kaggle auth login" in lines[0] and "KAGGLE_CONFIG_DIR" in lines[0]
    assert not root.exists()  # nothing was created before the credentials were checked


def test_credential_values_are_scrubbed_from_messages(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "planted0api0token0ffee0123"
    (home / ".kaggle").mkdir()
    (home / ".kaggle" / "access_token").write_text(token + "\n")
    (home / ".kaggle" / "credentials.json").write_text(json.dumps({"refresh_token": SECRET}))
    monkeypatch.setenv("KAGGLE_KEY", "planted0legacy0key0")
    text = f"denied {token} and {SECRET}\nfor planted0legacy0key0 retry"
    assert kaggle_api.scrub(text) == "denied *** and *** for *** retry"


def test_the_real_api_has_the_methods_the_fake_stands_in_for(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The installed kaggle package loads offline with (unchecked) keys, silently."""
    monkeypatch.setenv("KAGGLE_USERNAME", "student")
    monkeypatch.setenv("KAGGLE_KEY", SECRET)
    api = kaggle_api.create_api()
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    for name in ("competition_download_files", "competition_submit"):
        real = inspect.signature(getattr(api, name))
        for parameter in list(inspect.signature(getattr(FakeApi, name)).parameters)[1:]:
            assert parameter in real.parameters, (name, parameter)


# --- download ----------------------------------------------------------------------------


def test_download_unzips_checks_and_is_idempotent(
    credentials: Path,
    fake: FakeApi,
    small: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "data"
    assert run_main(data_cli.main, "download", f"root={root}") == 0
    assert fake.downloads == [(DEFAULT_COMPETITION, False)]
    assert same_tree(root, small)
    assert (root / MARKER).is_file() and not (root / STAGING).exists()
    assert read_split(root, "train-clean-100", progress=False).frames > 0
    capsys.readouterr()

    assert run_main(data_cli.main, "download", f"root={root}") == 0
    assert len(fake.downloads) == 1  # the second call does nothing
    assert "nothing to do" in capsys.readouterr().out
    for path in root.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_download_resumes_a_cut_archive(
    credentials: Path, fake: FakeApi, small: Path, tmp_path: Path
) -> None:
    root = tmp_path / "data"
    (root / STAGING).mkdir(parents=True)  # an earlier call was killed during the transfer
    cut = fake.archive.read_bytes()[:1000]
    (root / STAGING / "some-slug.zip").write_bytes(cut)
    fake.cut_downloads = 1  # and the API's next transfer ends half way too
    kaggle_api.download_competition(root, "some-slug")
    assert fake.downloads == [("some-slug", False), ("some-slug", True)]
    assert same_tree(root, small)


def test_an_interrupted_extraction_is_redone_from_the_archive(
    credentials: Path, fake: FakeApi, small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "data"
    move_into = kaggle_api._move_into

    def killed_after_one(source: Path, target: Path) -> list[str]:
        first = sorted(source.iterdir())[0]
        shutil.rmtree(first / "mfcc")  # half of a split is in place when the run dies
        os.replace(first, target / first.name)
        second = sorted(source.iterdir())[0]  # and a file was being written elsewhere
        (second / "mfcc" / "zz-partial.npy").write_bytes(b"\x93NUMPY\x01")
        raise KeyboardInterrupt

    monkeypatch.setattr(kaggle_api, "_move_into", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        kaggle_api.download_competition(root)
    assert not (root / MARKER).exists()
    monkeypatch.setattr(kaggle_api, "_move_into", move_into)
    assert kaggle_api.download_competition(root) is True
    assert len(fake.downloads) == 1  # the whole archive of the first call was reused
    assert same_tree(root, small)
    assert kaggle_api.download_competition(root) is False


def test_an_archive_without_the_layout_is_refused(
    credentials: Path, fake: FakeApi, tmp_path: Path
) -> None:
    fake.archive = tmp_path / "other.zip"
    with zipfile.ZipFile(fake.archive, "w") as zipped:
        zipped.writestr("sample_submission.csv", "Id,Label\n")
    with pytest.raises(PhonemlpError, match="no split folder with an mfcc/ folder"):
        kaggle_api.download_competition(tmp_path / "data")
    assert not (tmp_path / "data" / MARKER).exists()


@pytest.mark.parametrize(
    "error, expected",
    [
        (requests.ConnectionError("Max retries exceeded"), "cannot reach Kaggle"),
        (http_error(403, "Forbidden"), "accept its rules"),
        (http_error(404, "Not Found"), "not found"),
        (http_error(401, f"Unauthorized key {SECRET}"), "rejected the credentials"),
    ],
    ids=["no-network", "rules-not-accepted", "unknown-competition", "bad-key"],
)
def test_download_api_errors_are_one_line(
    credentials: Path,
    fake: FakeApi,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    error: BaseException,
    expected: str,
) -> None:
    fake.error = error
    assert run_main(data_cli.main, "download", f"root={tmp_path / 'data'}") == 2
    assert expected in one_line(capsys, "phonemlp-data")


# --- the CSV validator -------------------------------------------------------------------


def valid_csv(root: Path, path: Path, label_format: str = "symbol") -> Path:
    frames = count_frames(root, "test-clean")
    predictions = np.random.default_rng(0).integers(0, 40, frames)
    write_submission(path, predictions, label_format)
    return path


def test_valid_csvs_in_both_label_formats(small: Path, tmp_path: Path) -> None:
    frames = read_split(small, "test-clean", labelled=False, progress=False).frames
    assert count_frames(small, "test-clean") == frames
    for label_format in ("symbol", "index"):
        path = valid_csv(small, tmp_path / f"{label_format}.csv", label_format)
        assert validate_submission(path, frames) == label_format


def _lines(change: Callable[[list[str]], list[str]]) -> Callable[[Path], None]:
    def spoil(path: Path) -> None:
        path.write_text("\n".join(change(path.read_text().splitlines())) + "\n")

    return spoil


def _set(row: int, text: str) -> Callable[[list[str]], list[str]]:
    def change(lines: list[str]) -> list[str]:
        lines[row + 1] = text
        return lines

    return change


HEADER = "the header must be id,label"
BAD_CSVS = {
    "other-header": (_lines(lambda ls: ["Id,Prediction", *ls[1:]]), HEADER),
    "spaced-header": (_lines(lambda ls: ["Id, Label", *ls[1:]]), HEADER),
    "extra-column": (_lines(lambda ls: ["Id,Label,Extra", *ls[1:]]), HEADER),
    "empty": (lambda p: p.write_text(""), HEADER),
    "one-row-short": (_lines(lambda ls: ls[:-1]), "rows but"),
    "one-row-long": (_lines(lambda ls: [*ls, f"{len(ls) - 1},AH"]), "rows but"),
    "ids-swapped": (_lines(lambda ls: [ls[0], ls[2], ls[1], *ls[3:]]), "row 1 (line 2) has Id '1'"),
    "id-not-a-number": (_lines(_set(4, "four,AH")), "row 5 (line 6) has Id 'four'"),
    "id-as-float": (_lines(_set(4, "4.0,AH")), "row 5 (line 6) has Id '4.0'"),
    "unknown-symbol": (_lines(_set(6, "6,XX")), "row 7 (line 8) has Label 'XX'"),
    "sos-is-no-class": (_lines(_set(6, "6,[SOS]")), "row 7 (line 8) has Label '[SOS]'"),
    "empty-label": (_lines(_set(6, "6,")), "row 7 (line 8) has Label ''"),
    "index-among-symbols": (_lines(_set(9, "9,3")), "row 10 (line 11) has Label '3'"),
    "ragged-row": (_lines(_set(3, "3,AH,AH")), "not a valid id,label CSV"),
}


@pytest.mark.parametrize("name", list(BAD_CSVS))
def test_a_bad_csv_never_reaches_the_api(
    name: str,
    credentials: Path,
    fake: FakeApi,
    small: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spoil, expected = BAD_CSVS[name]
    path = valid_csv(small, tmp_path / "submission.csv")
    spoil(path)
    assert run_main(submit.main, f"file={path}", f"data.root={small}") == 2
    line = one_line(capsys, "phonemlp-submit")
    assert expected in line and str(path) in line
    assert fake.submissions == []


def test_index_labels_out_of_range(small: Path, tmp_path: Path) -> None:
    path = valid_csv(small, tmp_path / "indices.csv", "index")
    _lines(_set(2, "2,40"))(path)
    with pytest.raises(PhonemlpError, match=re.escape("row 3 (line 4) has Label '40'")):
        validate_submission(path, count_frames(small, "test-clean"))


def test_missing_file(small: Path, tmp_path: Path) -> None:
    with pytest.raises(PhonemlpError, match="not found"):
        validate_submission(tmp_path / "nowhere.csv", 10)


# --- submit ------------------------------------------------------------------------------


def test_a_valid_csv_is_submitted(
    credentials: Path,
    fake: FakeApi,
    small: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = valid_csv(small, tmp_path / "submission.csv")
    code = run_main(
        submit.main, f"file={path}", f"data.root={small}", "message=pyramid c30", "competition=x-y"
    )
    assert code == 0
    assert fake.submissions == [(str(path), "pyramid c30", "x-y")]
    out = capsys.readouterr().out
    assert "valid" in out and "submitted" in out and SECRET not in out


@pytest.mark.parametrize("header", ["id,label", "Id,Label"], ids=["starter", "write-up"])
def test_either_header_is_submitted(
    header: str, credentials: Path, fake: FakeApi, small: Path, tmp_path: Path
) -> None:
    path = valid_csv(small, tmp_path / "submission.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "id,label"  # what phonemlp writes without a sample_submission.csv
    path.write_text("\n".join([header, *lines[1:]]) + "\n")
    assert run_main(submit.main, f"file={path}", f"data.root={small}") == 0
    assert fake.submissions == [(str(path), f"phonemlp: {path.name}", DEFAULT_COMPETITION)]


def test_dry_run_checks_without_credentials_or_upload(
    home: Path, fake: FakeApi, small: Path, tmp_path: Path
) -> None:
    path = valid_csv(small, tmp_path / "submission.csv", "index")
    assert run_main(submit.main, f"file={path}", f"data.root={small}", "dry_run=true") == 0
    assert fake.submissions == []


def test_submit_without_credentials(
    home: Path, small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = valid_csv(small, tmp_path / "submission.csv")
    assert run_main(submit.main, f"file={path}", f"data.root={small}") == 2
    assert "~/.kaggle/kaggle.json" in one_line(capsys, "phonemlp-submit")


@pytest.mark.parametrize(
    "error, answer, expected",
    [
        (requests.ConnectionError("Name or service not known"), None, "cannot reach Kaggle"),
        (requests.Timeout("read timed out"), None, "cannot reach Kaggle"),
        (http_error(400, "Submission limit reached"), None, "daily submission limit"),
        (http_error(429, "Too Many Requests"), None, "daily submission limit"),
        (http_error(400, "Submission file rejected: bad format"), None, "bad format"),
        (http_error(401, f"key {SECRET} invalid"), None, "rejected the credentials"),
        (RuntimeError("something odd"), None, "RuntimeError: something odd"),
        (SystemExit(1), None, "stopped"),
        (None, "Could not submit to competition", "Could not submit"),
    ],
    ids=[
        "no-network",
        "timeout",
        "daily-limit",
        "too-many",
        "rejected",
        "bad-key",
        "other",
        "exit",
        "upload-failed",
    ],
)
def test_submit_api_errors_are_one_line(
    credentials: Path,
    fake: FakeApi,
    small: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    error: BaseException | None,
    answer: str | None,
    expected: str,
) -> None:
    fake.error = error
    if answer is not None:
        fake.answer = answer
    path = valid_csv(small, tmp_path / "submission.csv")
    assert run_main(submit.main, f"file={path}", f"data.root={small}") == 2
    assert expected in one_line(capsys, "phonemlp-submit")


# --- phonemlp-predict submit=true --------------------------------------------------------


@pytest.fixture(scope="module")
def trained(small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    train_run(run_dir, f"data.root={small}", *TINY, "limit_batches=2")
    return run_dir


def predict_config(*overrides: str):
    with initialize_config_module(config_module="phonemlp.conf", version_base="1.3"):
        return compose("predict", overrides=list(overrides))


def test_predict_writes_then_submits(
    trained: Path, credentials: Path, fake: FakeApi, tmp_path: Path
) -> None:
    out = tmp_path / "submission.csv"
    predict(predict_config(f"ckpt={trained}", f"out={out}", "submit=true", "message=run 1"))
    assert fake.submissions == [(str(out), "run 1", DEFAULT_COMPETITION)]
    assert out.is_file()


def test_predict_submit_without_credentials_fails_before_predicting(
    trained: Path, home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "submission.csv"
    with pytest.raises(PhonemlpError, match="KAGGLE_USERNAME"):
        predict(predict_config(f"ckpt={trained}", f"out={out}", "submit=true"))
    assert not out.exists()
