"""The Kaggle boundary: credentials, the API object, its errors as one line, download, submit.

The `kaggle` package is imported only inside `create_api` (it authenticates, prints and may
exit when imported), so every other command works without it; tests replace `create_api`.
Credential values are never printed, logged or written: messages name where they came from.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import time
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from phonemlp.atomic import write_text
from phonemlp.errors import PhonemlpError

DEFAULT_COMPETITION = "11785-spring-25-hw-1-p-2"
DAILY_SUBMISSIONS = 10
MARKER = ".phonemlp-download.json"  # written last: its presence means the download is complete
STAGING = ".phonemlp-download"  # the archive and its extraction while a download is under way
CREDENTIALS_HELP = (
    "put kaggle.json (kaggle.com > Settings > API > Create New Token) in ~/.kaggle/kaggle.json "
    "(chmod 600; or in $KAGGLE_CONFIG_DIR), or set KAGGLE_USERNAME and KAGGLE_KEY"
)


# --- credentials -------------------------------------------------------------------------


def _config_dirs() -> list[Path]:
    """Where the kaggle package looks for kaggle.json, in its order."""
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        return [Path(os.environ["KAGGLE_CONFIG_DIR"]).expanduser()]
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return [Path.home() / ".kaggle", Path(xdg) / "kaggle"]


def _token_files() -> list[Path]:
    kaggle_dir = Path.home() / ".kaggle"
    return [kaggle_dir / "access_token", kaggle_dir / "access_token.txt"]


def _read_kaggle_json(path: Path) -> dict[str, Any]:
    try:
        values = json.loads(path.read_text())
    except (OSError, ValueError):
        values = None
    if not isinstance(values, dict) or not values.get("username") or not values.get("key"):
        raise PhonemlpError(
            f'{path}: not a valid kaggle.json (it needs "username" and "key"); '
            "download a new one from kaggle.com > Settings > API > Create New Token"
        )
    return values


def credential_source() -> str | None:
    """Where Kaggle credentials are (an env variable's name or a file), None if nowhere."""
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return "KAGGLE_USERNAME/KAGGLE_KEY"
    if os.environ.get("KAGGLE_API_TOKEN"):
        return "KAGGLE_API_TOKEN"
    for folder in _config_dirs():
        if (folder / "kaggle.json").is_file():
            _read_kaggle_json(folder / "kaggle.json")
            return str(folder / "kaggle.json")
    for path in _token_files():
        if path.is_file() and path.read_text().strip():
            return str(path)
    return None


def require_credentials() -> str:
    """The credentials' source, or a PhonemlpError saying where credentials go."""
    source = credential_source()
    if source is None:
        half = [name for name in ("KAGGLE_USERNAME", "KAGGLE_KEY") if os.environ.get(name)]
        hint = f" ({half[0]} is set but not its partner)" if half else ""
        raise PhonemlpError(f"no Kaggle credentials found{hint}: {CREDENTIALS_HELP}")
    return source


def _secrets() -> list[str]:
    """The credential values on this machine, to keep them out of any message."""
    values = [os.environ.get(name, "") for name in ("KAGGLE_KEY", "KAGGLE_API_TOKEN")]
    for folder in _config_dirs():
        with contextlib.suppress(OSError, ValueError, AttributeError):
            values.append(str(json.loads((folder / "kaggle.json").read_text()).get("key", "")))
    for path in _token_files():
        with contextlib.suppress(OSError):
            values.append(path.read_text().strip())
    return [value for value in values if len(value) >= 4]


def scrub(text: str) -> str:
    """`text` on one line, with any credential value replaced by ***."""
    for secret in _secrets():
        text = text.replace(secret, "***")
    return " ".join(text.split())


# --- the API object and its errors ---------------------------------------------------------


def create_api() -> Any:
    """An authenticated `KaggleApi` (the one place the kaggle package is imported)."""
    source = require_credentials()
    chatter = io.StringIO()  # the package prints help and warnings when imported/authenticating
    try:
        with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            from kaggle.api.kaggle_api_extended import KaggleApi

            api = KaggleApi()
            api.authenticate()
    except SystemExit:
        raise PhonemlpError(
            f"Kaggle did not accept the credentials from {source}: {CREDENTIALS_HELP}"
        ) from None
    except ImportError as error:
        raise PhonemlpError(
            f"the kaggle package cannot be imported ({scrub(str(error))}); "
            "reinstall phonemlp's dependencies (pip install -e .)"
        ) from None
    except Exception as error:
        raise PhonemlpError(describe_api_error(error, "kaggle login", "")) from None
    return api


def describe_api_error(error: BaseException, action: str, competition: str) -> str:
    """One line for a failed Kaggle API call: what failed and what to do."""
    try:
        import requests
    except ImportError:  # pragma: no cover - requests comes with kaggle
        requests = None
    page = f"https://www.kaggle.com/competitions/{competition}"
    if requests is not None and isinstance(
        error, requests.exceptions.ConnectionError | requests.exceptions.Timeout
    ):
        return (
            f"{action}: cannot reach Kaggle ({type(error).__name__}); "
            "check the network connection and try again"
        )
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    detail = scrub(str(error) or getattr(response, "text", "") or type(error).__name__)[:300]
    lowered = detail.lower()
    if status is not None:
        if status == 429 or "limit" in lowered or "daily" in lowered:
            return (
                f"{action}: Kaggle refused it (HTTP {status}): over the limit of "
                f"{DAILY_SUBMISSIONS} submissions a day or of requests; try again later "
                f"(Kaggle says: {detail})"
            )
        if status == 401:
            return (
                f"{action}: Kaggle rejected the credentials (HTTP 401); create a new token: "
                f"{CREDENTIALS_HELP}"
            )
        if status == 403:
            return (
                f"{action}: Kaggle refused access to {competition} (HTTP 403); join the "
                f"competition and accept its rules at {page}/rules (Kaggle says: {detail})"
            )
        if status == 404:
            return (
                f"{action}: competition '{competition}' not found on Kaggle (HTTP 404); "
                f"check competition= (Kaggle says: {detail})"
            )
        return f"{action}: Kaggle rejected it (HTTP {status}): {detail}"
    if isinstance(error, OSError):
        return f"{action}: {detail}"
    return f"{action}: the Kaggle API failed: {type(error).__name__}: {detail}"


@contextlib.contextmanager
def kaggle_errors(action: str, competition: str) -> Iterator[None]:
    """Turn whatever a Kaggle API call raises (or exits with) into one PhonemlpError line."""
    try:
        yield
    except PhonemlpError:
        raise
    except SystemExit as stop:
        raise PhonemlpError(
            f"{action}: the kaggle package stopped (status {stop.code}); {CREDENTIALS_HELP}"
        ) from None
    except Exception as error:
        raise PhonemlpError(describe_api_error(error, action, competition)) from None


# --- download ----------------------------------------------------------------------------


def _complete_zip(path: Path) -> bool:
    """Whether `path` is a whole zip archive (a cut download has no central directory)."""
    if not path.is_file():
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return bool(archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _extract(archive_path: Path, into: Path) -> None:
    """Unzip into an empty `into`, with a progress bar over the uncompressed bytes."""
    if into.exists():
        shutil.rmtree(into)  # a half extraction from an interrupted run: start it again
    into.mkdir(parents=True)
    with zipfile.ZipFile(archive_path) as archive:
        members = archive.infolist()
        total = sum(member.file_size for member in members)
        with tqdm(total=total, unit="B", unit_scale=True, desc="unzipping", leave=False) as bar:
            for member in members:
                archive.extract(member, into)
                bar.update(member.file_size)


def _corpus_folder(extracted: Path) -> Path:
    """The folder of the extraction whose sub-folders are splits (hold an mfcc/ folder)."""
    level = [extracted]
    for _ in range(4):
        for folder in level:
            if any((child / "mfcc").is_dir() for child in folder.iterdir() if child.is_dir()):
                return folder
        level = [child for folder in level for child in folder.iterdir() if child.is_dir()]
    raise PhonemlpError(
        f"{extracted}: the downloaded archive holds no split folder with an mfcc/ folder; "
        "is competition= the HW1P2 competition?"
    )


def _move_into(source: Path, root: Path) -> list[str]:
    """Move every entry of `source` into `root`, replacing entries of the same name."""
    moved = []
    for entry in sorted(source.iterdir()):
        target = root / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        os.replace(entry, target)
        moved.append(entry.name)
    return moved


def downloaded(root: Path, competition: str) -> bool:
    """Whether `root` holds a finished download of `competition` whose layout still checks."""
    from phonemlp.corpus_check import layout_problems

    try:
        recorded = json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(recorded, dict)
        and recorded.get("competition") == competition
        and not layout_problems(root)
    )


def download_competition(root: Path, competition: str = DEFAULT_COMPETITION) -> bool:
    """Download, unzip and check the competition's files in `root`; False if already there.

    The archive and its extraction live in `root/.phonemlp-download/` until the split
    folders are moved into place and the marker file is written, so an interrupted call is
    resumed (a whole archive is reused, a cut one handed back to the API) or redone.
    """
    from phonemlp.corpus_check import layout_problems

    root = Path(root).expanduser()
    if root.exists() and not root.is_dir():
        raise PhonemlpError(f"root={root}: exists and is not a folder")
    if downloaded(root, competition):
        print(f"{root}: {competition} already downloaded and checked; nothing to do")
        return False
    staging = root / STAGING
    archive = staging / f"{competition}.zip"
    if not _complete_zip(archive):
        require_credentials()  # before anything is created
    staging.mkdir(parents=True, exist_ok=True)
    for attempt in range(2):
        if _complete_zip(archive):
            print(f"{archive}: reusing the archive of an earlier download")
        else:
            api = create_api()
            print(f"downloading {competition} into {staging}")
            with kaggle_errors(f"downloading {competition}", competition):
                api.competition_download_files(
                    competition, path=str(staging), force=attempt > 0, quiet=False
                )
            if not archive.is_file():  # the API names the file after the served format
                found = sorted(staging.glob("*.zip"))
                if len(found) != 1:
                    raise PhonemlpError(
                        f"{staging}: the Kaggle API left no {archive.name} (found: "
                        f"{', '.join(p.name for p in staging.iterdir()) or 'nothing'})"
                    )
                found[0].rename(archive)
            if not _complete_zip(archive):
                archive.unlink()
                if attempt == 0:
                    continue
                raise PhonemlpError(
                    f"{archive}: the downloaded archive is incomplete twice; check the disk "
                    "space and the network, then run the command again"
                )
        try:
            _extract(archive, staging / "extracted")
            break
        except (zipfile.BadZipFile, EOFError, zlib.error) as error:
            archive.unlink()
            if attempt > 0:
                raise PhonemlpError(
                    f"{archive}: damaged archive ({error}); deleted it: run the command again"
                ) from None
    moved = _move_into(_corpus_folder(staging / "extracted"), root)
    problems = layout_problems(root)
    if problems:
        raise PhonemlpError(
            f"{root}: the downloaded files do not have the HW1P2 layout: {problems[0]}"
        )
    record = {"competition": competition, "entries": moved, "finished": time.time()}
    write_text(root / MARKER, json.dumps(record, indent=1) + "\n")
    shutil.rmtree(staging)
    print(f"{root}: {competition} downloaded ({', '.join(moved)}); layout checked")
    return True


# --- submit ------------------------------------------------------------------------------


def submit_to_kaggle(path: Path, message: str, competition: str) -> str:
    """Upload a (validated) submission CSV; returns Kaggle's answer."""
    api = create_api()
    with kaggle_errors(f"submitting {path} to {competition}", competition):
        response = api.competition_submit(str(path), message, competition, quiet=False)
    answer = scrub(str(getattr(response, "message", "") or ""))
    if answer.lower().startswith("could not submit"):
        raise PhonemlpError(
            f"submitting {path} to {competition}: Kaggle says '{answer}'; check the network "
            "and run the command again"
        )
    return answer
