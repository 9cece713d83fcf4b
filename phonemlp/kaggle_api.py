"""The Kaggle boundary: credentials, the API object, its errors as one line, download, submit.

The `kaggle` package is imported only inside `create_api`, when a command is about to talk
to Kaggle: importing it is slow, and it authenticates (over the network, for an access
token), prints and may exit when imported. Which credentials count is the package's own
decision (`KaggleApi.authenticate`); this module only turns its failure into one line that
names every source it accepts. Tests replace `create_api`. Credential values are never
printed, logged or written: messages name where they came from.
"""

from __future__ import annotations

import contextlib
import hashlib
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

from phonemlp.atomic import write_text
from phonemlp.errors import PhonemlpError
from phonemlp.progress import progress_bar

DEFAULT_COMPETITION = "11785-spring-25-hw-1-p-2"
MARKER = ".phonemlp-download.json"  # written last: its presence means the download is complete
STAGING = ".phonemlp-download"  # the archive and its extraction while a download is under way
# Every source the kaggle package (2.1.1 and later) accepts, in the order it tries them.
CREDENTIALS_HELP = (
    "generate an API token (kaggle.com > Settings > API > Generate New Token) and set "
    "KAGGLE_API_TOKEN to it (or to a file holding it) or save it in ~/.kaggle/access_token; "
    "or use a legacy key: ~/.kaggle/kaggle.json (in $KAGGLE_CONFIG_DIR instead when that is "
    "set, in ~/.config/kaggle/ when there is no ~/.kaggle; chmod 600) or the KAGGLE_USERNAME "
    "and KAGGLE_KEY variables; or run `kaggle auth login` (OAuth; it saves "
    "~/.kaggle/credentials.json)"
)
_TOKEN_SOURCES = {
    "access_token": "~/.kaggle/access_token",
    "KAGGLE_API_V1_TOKEN": "$KAGGLE_API_V1_TOKEN",
}


# --- credentials -------------------------------------------------------------------------


def _secret_files() -> list[Path]:
    """Files that may hold a credential value (to scrub them from messages)."""
    kaggle_dir = Path.home() / ".kaggle"
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    paths = [kaggle_dir / "kaggle.json", xdg / "kaggle" / "kaggle.json"]
    for name in ("access_token", "access_token.txt", "credentials.json"):
        paths.append(kaggle_dir / name)
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        paths.append(Path(os.environ["KAGGLE_CONFIG_DIR"]).expanduser() / "kaggle.json")
    for name in ("KAGGLE_API_TOKEN", "KAGGLE_API_V1_TOKEN"):  # a token or a file holding one
        with contextlib.suppress(OSError, ValueError):
            if os.environ.get(name) and Path(os.environ[name]).is_file():
                paths.append(Path(os.environ[name]))
    return paths


def _secrets() -> list[str]:
    """The credential values on this machine, to keep them out of any message."""
    values = [os.environ.get(name, "") for name in ("KAGGLE_KEY", "KAGGLE_API_TOKEN")]
    for path in _secret_files():
        with contextlib.suppress(OSError, UnicodeDecodeError):
            text = path.read_text().strip()
            values.append(text)
            with contextlib.suppress(ValueError):
                stored = json.loads(text)
                if isinstance(stored, dict):
                    for name in ("key", "access_token", "refresh_token"):
                        values.append(str(stored.get(name) or ""))
    return sorted({value for value in values if len(value) >= 4}, key=len, reverse=True)


def scrub(text: str) -> str:
    """`text` on one line, with any credential value replaced by ***."""
    for secret in _secrets():
        text = text.replace(secret, "***")
    return " ".join(text.split())


def _unusable(api: Any, chatter: str) -> str:
    """Why the kaggle package found no usable credentials, from what it looked at."""
    found = []
    if "Invalid credentials" in chatter:  # the package's words for a refused OAuth login
        found.append(
            "Kaggle refused the OAuth login of ~/.kaggle/credentials.json and the kaggle "
            "package removed that file"
        )
    with contextlib.suppress(Exception):
        from kagglesdk import get_access_token_from_env

        token, source = get_access_token_from_env()
        if token:
            where = _TOKEN_SOURCES.get(source, source)
            found.append(f"Kaggle refused the access token in {where} as invalid or expired")
    config = Path(str(getattr(api, "config", "") or "")).expanduser()
    if config.is_file():
        found.append(f'{config} is not JSON with "username" and "key"')
    half = [name for name in ("KAGGLE_USERNAME", "KAGGLE_KEY") if os.environ.get(name)]
    if len(half) == 1:
        found.append(f"{half[0]} is set but not its partner")
    if found:
        return f"no usable Kaggle credentials ({'; '.join(found)}): {CREDENTIALS_HELP}"
    return f"no Kaggle credentials found: {CREDENTIALS_HELP}"


def _fingerprint() -> str:
    """What the credentials depend on in the environment (a digest: no value is kept)."""
    names = ("HOME", "XDG_CONFIG_HOME")
    items = sorted((k, v) for k, v in os.environ.items() if k.startswith("KAGGLE_") or k in names)
    return hashlib.sha256(repr(items).encode()).hexdigest()


_authenticated: dict[str, Any] = {}  # one API per credential environment, within a process


def create_api() -> Any:
    """A `KaggleApi` authenticated by the kaggle package's own rules (the one place the
    package is imported); a PhonemlpError naming every accepted source if it finds none."""
    fingerprint = _fingerprint()
    if fingerprint in _authenticated:
        return _authenticated[fingerprint]
    chatter = io.StringIO()  # the package prints help and warnings when imported/authenticating
    api = None
    try:
        with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            from kaggle.api.kaggle_api_extended import KaggleApi

            api = KaggleApi()
            api.authenticate()
    except SystemExit:
        raise PhonemlpError(_unusable(api, chatter.getvalue())) from None
    except ImportError as error:
        raise PhonemlpError(
            f"the kaggle package cannot be imported ({scrub(str(error))}); "
            "reinstall phonemlp's dependencies (pip install -e .)"
        ) from None
    except Exception as error:
        raise PhonemlpError(describe_api_error(error, "kaggle login", "")) from None
    _authenticated.clear()
    _authenticated[fingerprint] = api
    return api


def require_credentials() -> Any:
    """Authenticate now, before any long work (`create_api`'s API, or its one-line error)."""
    return create_api()


# --- the API object and its errors ---------------------------------------------------------


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
                f"{action}: Kaggle refused it (HTTP {status}): over the competition's daily "
                f"submission limit or Kaggle's request limit; try again later "
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
        with progress_bar(total=total, desc="unzipping", unit="B") as bar:
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


def _fetch_archive(competition: str, archive: Path, retry: bool) -> bool:
    """Make sure `archive` holds the competition's whole zip: reuse it, or download it (again
    on a `retry`). False when the download came back cut (deleted; the caller retries once)."""
    staging = archive.parent
    if _complete_zip(archive):
        print(f"{archive}: reusing the archive of an earlier download")
        return True
    api = create_api()
    print(f"downloading {competition} into {staging}")
    with kaggle_errors(f"downloading {competition}", competition):
        api.competition_download_files(competition, path=str(staging), force=retry, quiet=False)
    if not archive.is_file():  # the API names the file after the served format
        found = sorted(staging.glob("*.zip"))
        if len(found) != 1:
            raise PhonemlpError(
                f"{staging}: the Kaggle API left no {archive.name} (found: "
                f"{', '.join(p.name for p in staging.iterdir()) or 'nothing'})"
            )
        found[0].rename(archive)
    if _complete_zip(archive):
        return True
    archive.unlink()
    if retry:
        raise PhonemlpError(
            f"{archive}: the downloaded archive is incomplete twice; check the disk space and "
            "the network, then run the command again"
        )
    return False


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
        if not _fetch_archive(competition, archive, retry=attempt > 0):
            continue  # a cut download, deleted: once more
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
