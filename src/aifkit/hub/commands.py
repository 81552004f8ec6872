"""``aifkit hub ...``: run the local training hub, lint a hub configuration."""

from __future__ import annotations

import sys
from pathlib import Path

import click

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
    """Start the hub on its configured address; Ctrl-C stops it and everything it started."""
    from aifkit.hub.run import serve

    sys.exit(serve(config_path, announce=lambda line: click.echo(line, err=False)))


@hub.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--profile", type=click.Choice(["local", "factory"]), default=None)
def check(path: Path, profile: str | None) -> None:
    """Report every insecure or broken setting of a hub configuration, with its fix."""
    from aifkit.hub.check import main_check

    sys.exit(main_check(path, profile))
