"""Hub secrets in files only their owner can read: made at first start, refused when exposed."""

from __future__ import annotations

import os
import secrets as random
import stat
from pathlib import Path

from aifkit.hub.apply import Secrets
from aifkit.hub.schema import HubConfig, HubConfigError


def _write_new(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        stream.write(value + "\n")


def read_private(path: Path) -> str:
    """The file's text; an error when others can read or write it (fix: chmod 600)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise HubConfigError(f"{path}: secret file missing (`aifkit hub init` makes it)") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise HubConfigError(
            f"{path}: readable by others (mode {mode & 0o777:o}): chmod 600 {path}"
        )
    return path.read_text(encoding="utf-8").strip()


def ensure(config: HubConfig) -> list[str]:
    """Create the secret files that do not exist yet; return what was made, for the first start."""
    made: list[str] = []
    cookie = config.path(config.cookie_secret_file)
    if not cookie.exists():
        _write_new(cookie, random.token_hex(32))
        made.append(f"cookie secret {cookie}")
    proxy = config.path(config.proxy_token_file)
    if not proxy.exists():
        _write_new(proxy, random.token_hex(32))
        made.append(f"proxy token {proxy}")
    if config.auth == "shared-password":
        passwords = config.path(config.password_file)
        if not passwords.exists():
            _write_new(passwords, random.token_urlsafe(12))
            made.append(f"password {passwords}")
    return made


def _read_for_check(path: Path) -> str:
    """Under `aifkit hub check`: what the file holds, or a placeholder; check.py judges modes."""
    from aifkit.hub.check import PLACEHOLDER

    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return PLACEHOLDER


def load(config: HubConfig) -> Secrets:
    """Every secret the config needs, each from its mode-600 file.

    While `aifkit hub check` loads a configuration (AIFKIT_HUB_CHECK=1) nothing raises and
    nothing is created: the check reports missing and exposed files itself.
    """
    checking = os.environ.get("AIFKIT_HUB_CHECK") == "1"
    read = _read_for_check if checking else read_private
    password = ""
    if config.auth == "shared-password":
        password = read(config.path(config.password_file))
    client_secret = ""
    if config.auth == "oidc" and config.oidc is not None:
        client_secret = read(Path(config.oidc.client_secret_file))
    if not checking:
        read_private(config.path(config.cookie_secret_file))  # JupyterHub reads it: check mode
    return Secrets(
        proxy_token=read(config.path(config.proxy_token_file)),
        user_password=password,
        oidc_client_secret=client_secret,
    )
