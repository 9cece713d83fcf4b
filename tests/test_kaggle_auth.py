"""Kaggle credentials as the kaggle package itself finds them, and its failure as one line.

Each case runs in a fresh process (the package fixes its kaggle.json folder when first
imported) with HOME in a temporary folder and the network cut off: the one call the package
makes to check an access token (token introspection) is answered locally, and any other
request fails, so nothing ever reaches Kaggle and no upload is attempted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

TOKEN = "planted0api0token0b7e21a9"  # the token Kaggle would accept; never in any output
KEY = "planted0legacy0key0c94d07"  # a legacy kaggle.json / KAGGLE_KEY value
EXPIRED = "planted0expired0token0d13"  # a token Kaggle would refuse
SECRETS = (TOKEN, KEY, EXPIRED, "planted0refresh0token0e55")

PROBE = f"""
import sys

import requests
from kagglesdk.security.services.oauth_service import OAuthClient
from kagglesdk.security.types.oauth_service import IntrospectTokenResponse
from kagglesdk.users.services.account_service import AccountClient


def offline(self, request, **kwargs):
    raise requests.ConnectionError("no network in tests")


def introspect(self, request=None):  # what Kaggle answers: active only for the valid token
    response = IntrospectTokenResponse()
    if request.token == {TOKEN!r}:
        response.active, response.username = True, "student"
    return response


def refuse(self, request=None):  # Kaggle's answer to a revoked OAuth login
    response = requests.Response()
    response.status_code = 401
    raise requests.HTTPError("401 Unauthorized", response=response)


requests.Session.send = offline
if sys.argv[1:] != ["offline"]:
    OAuthClient.introspect_token = introspect
AccountClient.generate_access_token = refuse

from phonemlp.errors import exit_on_user_error
from phonemlp.kaggle_api import create_api, require_credentials

with exit_on_user_error("probe"):
    api = require_credentials()
    assert create_api() is api  # authenticated once per command
    print(api.config_values["auth_method"], api.config_values["username"])
"""


def probe(home: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    base.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), **env)
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env=base,
        timeout=120,
    )
    for secret in SECRETS:
        assert secret not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return proc


def probe_case(
    setup: Callable[[Path, dict[str, str]], object], tmp: Path
) -> subprocess.CompletedProcess[str]:
    """The probe in a fresh HOME under `tmp`, after `setup(home, env)` planted credentials."""
    home = tmp / "home"
    home.mkdir()
    env: dict[str, str] = {}
    setup(home, env)
    return probe(home, env)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
    return path


def kaggle_json(folder: Path) -> None:
    write(folder / "kaggle.json", json.dumps({"username": "student", "key": KEY}))


def oauth_login(home: Path, hours: float = 6) -> None:
    """~/.kaggle/credentials.json as `kaggle auth login` leaves it, its access token valid
    for `hours` more (when that is past, the package asks Kaggle for a new one)."""
    expires = datetime.now(UTC) + timedelta(hours=hours)
    saved = {
        "refresh_token": SECRETS[3],
        "access_token": TOKEN,
        "access_token_expiration": expires.isoformat(),
        "username": "student",
        "scopes": [],
    }
    write(home / ".kaggle" / "credentials.json", json.dumps(saved))


Setup = Callable[[Path, dict[str, str]], None]
SOURCES: dict[str, tuple[Setup, str]] = {
    "KAGGLE_API_TOKEN": (lambda h, env: env.update(KAGGLE_API_TOKEN=TOKEN), "ACCESS_TOKEN"),
    "KAGGLE_API_TOKEN-naming-a-file": (
        lambda h, env: env.update(KAGGLE_API_TOKEN=str(write(h / "token", TOKEN + "\n"))),
        "ACCESS_TOKEN",
    ),
    "access_token": (lambda h, env: write(h / ".kaggle" / "access_token", TOKEN), "ACCESS_TOKEN"),
    "access_token.txt": (
        lambda h, env: write(h / ".kaggle" / "access_token.txt", TOKEN + "\n"),
        "ACCESS_TOKEN",
    ),
    "kaggle.json": (lambda h, env: kaggle_json(h / ".kaggle"), "LEGACY_API_KEY"),
    "KAGGLE_CONFIG_DIR": (
        lambda h, env: (
            kaggle_json(h / "elsewhere"),
            env.update(KAGGLE_CONFIG_DIR=str(h / "elsewhere")),
        ),
        "LEGACY_API_KEY",
    ),
    "xdg-config-without-dot-kaggle": (
        lambda h, env: kaggle_json(h / ".config" / "kaggle"),
        "LEGACY_API_KEY",
    ),
    "KAGGLE_USERNAME-and-KAGGLE_KEY": (
        lambda h, env: env.update(KAGGLE_USERNAME="student", KAGGLE_KEY=KEY),
        "LEGACY_API_KEY",
    ),
    "oauth-credentials.json": (lambda h, env: oauth_login(h), "OAUTH"),
    "broken-kaggle.json-and-a-valid-token": (
        lambda h, env: (
            write(h / ".kaggle" / "kaggle.json", '{"username": "student", "key": '),
            env.update(KAGGLE_API_TOKEN=TOKEN),
        ),
        "ACCESS_TOKEN",
    ),
    "incomplete-kaggle.json-and-a-token-file": (
        lambda h, env: (
            write(h / ".kaggle" / "kaggle.json", json.dumps({"username": "student"})),
            write(h / ".kaggle" / "access_token", TOKEN),
        ),
        "ACCESS_TOKEN",
    ),
    "refused-token-and-kaggle.json": (
        lambda h, env: (kaggle_json(h / ".kaggle"), env.update(KAGGLE_API_TOKEN=EXPIRED)),
        "LEGACY_API_KEY",
    ),
}


@pytest.mark.parametrize("source", list(SOURCES))
def test_each_source_the_package_accepts(source: str, tmp_path: Path) -> None:
    setup, method = SOURCES[source]
    proc = probe_case(setup, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == f"{method} student"


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("probe: error: "), proc.stderr
    return lines[0]


ACCEPTED = (
    "KAGGLE_API_TOKEN",
    "~/.kaggle/access_token",
    "~/.kaggle/kaggle.json",
    "KAGGLE_CONFIG_DIR",
    "KAGGLE_USERNAME",
    "KAGGLE_KEY",
    "kaggle auth login",
    "~/.kaggle/credentials.json",
)


def test_no_credentials_is_one_line_naming_every_source(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    line = one_line(probe(home, {}))
    assert "no Kaggle credentials found" in line
    for source in ACCEPTED:
        assert source in line, source


FAILURES: dict[str, tuple[Setup, str]] = {
    "refused-token": (
        lambda h, env: env.update(KAGGLE_API_TOKEN=EXPIRED),
        "Kaggle refused the access token in KAGGLE_API_TOKEN",
    ),
    "refused-token-file": (
        lambda h, env: write(h / ".kaggle" / "access_token", EXPIRED),
        "Kaggle refused the access token in ~/.kaggle/access_token",
    ),
    "broken-kaggle.json": (
        lambda h, env: write(h / ".kaggle" / "kaggle.json", f'{{"key": "{KEY}"'),
        'kaggle.json is not JSON with "username" and "key"',
    ),
    "revoked-oauth-login": (
        lambda h, env: oauth_login(h, hours=-24),
        "Kaggle refused the OAuth login of ~/.kaggle/credentials.json",
    ),
    "half-of-the-legacy-pair": (
        lambda h, env: env.update(KAGGLE_KEY=KEY),
        "KAGGLE_KEY is set but not its partner",
    ),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_unusable_credentials_are_one_line_saying_why(case: str, tmp_path: Path) -> None:
    setup, reason = FAILURES[case]
    line = one_line(probe_case(setup, tmp_path))
    assert reason in line
    for source in ACCEPTED:
        assert source in line, source


def test_a_token_without_network_says_so(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    line = one_line(probe(home, {"KAGGLE_API_TOKEN": TOKEN}, "offline"))
    assert "cannot reach Kaggle" in line and "network" in line
