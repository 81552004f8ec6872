"""``aifkit hub ...``: run a hub from its YAML, lint a hub configuration, show aifkit's hub files."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from aifkit.hub import require_jupyterhub

LOCAL = Path("hub-config/local/config.yml")


@click.group()
def hub() -> None:
    """The course's JupyterHub: the local training hub and the factory profile."""


@hub.command()
@click.option(
    "--config",
    "config_path",
    default=LOCAL,
    show_default=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Hub configuration (YAML, see hub-config/).",
)
def run(config_path: Path) -> None:
    """Start the hub on its configured address; Ctrl-C stops it and everything it started.

    Relative paths in the YAML (state_dir, course_root, ...) are taken from its folder.
    """
    require_jupyterhub()
    from aifkit.hub.run import serve

    sys.exit(serve(config_path, announce=lambda line: click.echo(line, err=False)))


@hub.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--profile", type=click.Choice(["local", "factory"]), default=None)
def check(path: Path, profile: str | None) -> None:
    """Report every insecure or broken setting of a hub configuration, with its fix."""
    require_jupyterhub()
    from aifkit.hub.check import main_check

    sys.exit(main_check(path, profile))


@hub.command()
def paths() -> None:
    """Where the installed aifkit keeps the hub's files (they are not edited per site).

    A site that runs JupyterHub itself: AIFKIT_HUB_CONFIG=/etc/.../config.yml jupyterhub -f
    <jupyterhub_config.py below>.
    """
    from aifkit import resources

    click.echo(f"jupyterhub_config.py  {resources.hub_config_file()}")
    for role in ("learner", "instructor"):
        click.echo(f"singleuser {role:11} {resources.singleuser_config_dir(role)}")
