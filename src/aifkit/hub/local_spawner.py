"""The isolated local spawner: each user's server runs as their own Unix account.

JupyterHub's LocalProcessSpawner with the account ``<prefix><name>`` (made when missing) instead
of the hub user's own name, the home from the hub's layout (mode 700) instead of the password
database's, and a private umask: what a server creates is its owner's only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Unicode

from aifkit.hub import accounts
from aifkit.hub.accounts import become

SHELL = "/bin/bash"


class IsolatedLocalSpawner(LocalProcessSpawner):  # type: ignore[misc]
    """A local server as the user's own Unix account (needs a hub running as root)."""

    user_prefix = Unicode("jupyter-", help="Unix account = prefix + hub user name").tag(config=True)
    home_dir_template = Unicode(
        help="The user's home; {username} is the hub user's name (not the account's)"
    ).tag(config=True)

    _account: accounts.Account | None = None

    @property
    def account(self) -> accounts.Account:
        """The user's account and home, made when missing (the hub prepares them at start)."""
        if self._account is None:
            if not self.home_dir_template:
                raise ValueError("IsolatedLocalSpawner.home_dir_template is not set")
            home = Path(self.home_dir_template.format(username=self.user.name))
            self._account = accounts.ensure_user(self.user_prefix + self.user.name, home)
        return self._account

    def make_preexec_fn(self, name: str) -> Callable[[], None]:
        return become(self.account)

    def user_env(self, env: dict[str, Any]) -> dict[str, Any]:
        account = self.account
        env.update(USER=account.name, LOGNAME=account.name, HOME=str(account.home), SHELL=SHELL)
        return env

    async def move_certs(self, paths: dict[str, str]) -> dict[str, str]:
        """Internal SSL is not used by the local hub: refuse rather than stage keys wrongly."""
        raise NotImplementedError("internal_ssl is not supported by the isolated local spawner")
