"""Pytest plugin: a real OpenID Connect provider (Debian's glewlwyd) on 127.0.0.1 for hub tests.

``oidc_provider`` (session) starts it with scripts/oidc-up.sh when nothing answers on its port
(installing glewlwyd when missing, which needs root, as in CI) and stops it with
scripts/oidc-down.sh afterwards, only when this session started it. The provider has the client
``aifkit-hub`` and the users of ``GROUPS``; tests register their hub's callback URL with
``register_callback`` and move users between groups with ``set_groups`` (its admin API).

OIDC_BASE and OIDC_PORT, the scripts' variables, apply here too.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from postgres_fixture import answers_on_loopback

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
HOST = "127.0.0.1"
CLIENT_ID = "aifkit-hub"
LEARNERS_GROUP = "aifkit-learners"
INSTRUCTORS_GROUP = "aifkit-instructors"
# what scripts/oidc-up.sh creates: user -> groups at the provider
GROUPS: dict[str, tuple[str, ...]] = {
    "lena": (LEARNERS_GROUP,),
    "ines": (INSTRUCTORS_GROUP,),
    "otto": (),
    "mia": (LEARNERS_GROUP,),
}
TIMEOUT_S = 15.0
MAX_CALLBACKS = 16


@dataclass(frozen=True)
class OidcProvider:
    """Where the provider listens, its issuer, and the secrets oidc-up.sh made (mode 600)."""

    port: int
    base: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.url}/api/oidc"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    @property
    def client_secret_file(self) -> Path:
        return self.base / "client_secret"

    @property
    def user_password(self) -> str:
        return (self.base / "user_password").read_text(encoding="utf-8").strip()

    def discovery(self) -> dict[str, Any]:
        reply = requests.get(self.discovery_url, timeout=TIMEOUT_S)
        reply.raise_for_status()
        document: dict[str, Any] = reply.json()
        return document

    def admin(self) -> requests.Session:
        """A session logged in to the provider's admin API."""
        session = requests.Session()
        password = (self.base / "admin_password").read_text(encoding="utf-8").strip()
        reply = session.post(
            f"{self.url}/api/auth/",
            json={"username": "admin", "password": password},
            timeout=TIMEOUT_S,
        )
        assert reply.status_code == 200, f"provider admin login: {reply.status_code} {reply.text}"
        return session

    def register_callback(self, callback_url: str) -> None:
        """Add ``callback_url`` to the client's redirect URIs (each hub has its own port); the
        most recent ``MAX_CALLBACKS`` are kept, so hubs of concurrent sessions all work."""
        admin = self.admin()
        client = admin.get(f"{self.url}/api/client/{CLIENT_ID}", timeout=TIMEOUT_S).json()
        client.pop("source", None)
        kept = [u for u in client.get("redirect_uri") or [] if u != callback_url]
        client["redirect_uri"] = [*kept[-(MAX_CALLBACKS - 1) :], callback_url]
        reply = admin.put(f"{self.url}/api/client/{CLIENT_ID}", json=client, timeout=TIMEOUT_S)
        assert reply.status_code == 200, f"client update: {reply.status_code} {reply.text}"

    def set_groups(self, username: str, groups: Sequence[str]) -> None:
        """Change ``username``'s group membership at the provider (what its admin would do)."""
        admin = self.admin()
        reply = admin.put(
            f"{self.url}/api/user/{username}", json={"groups": list(groups)}, timeout=TIMEOUT_S
        )
        assert reply.status_code == 200, f"groups of {username}: {reply.status_code} {reply.text}"
        seen = admin.get(f"{self.url}/api/user/{username}", timeout=TIMEOUT_S).json()
        assert sorted(seen.get("groups") or []) == sorted(groups), seen


def _down() -> None:
    subprocess.run([str(SCRIPTS / "oidc-down.sh")], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[OidcProvider]:
    """A real OpenID Connect provider (glewlwyd) on 127.0.0.1, set up by scripts/oidc-up.sh.

    The script runs every session (it is idempotent: a running provider is left running and
    its client, users and groups are reset to ``GROUPS``); it needs root, as in CI.
    """
    provider = OidcProvider(
        port=int(os.environ.get("OIDC_PORT", "54593")),
        base=Path(os.environ.get("OIDC_BASE", "/tmp/aifkit-oidc")),
    )
    if os.geteuid() != 0:
        pytest.skip(
            "the OIDC provider needs root to be installed and to read its secrets (CI runs as "
            "root); start it with scripts/oidc-up.sh"
        )
    started = not answers_on_loopback(provider.port)
    # 600 s: a fresh CI machine installs glewlwyd from Debian's mirror first
    up = subprocess.run([str(SCRIPTS / "oidc-up.sh")], capture_output=True, text=True, timeout=600)
    if up.returncode != 0:
        if started:
            _down()
        pytest.fail(f"oidc-up.sh failed:\n{up.stdout}\n{up.stderr}")
    assert up.stdout.strip() == provider.issuer, up.stdout
    yield provider
    if started:
        _down()
