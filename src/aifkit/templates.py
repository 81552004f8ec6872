"""Batch-script templates: Jinja2 files in ``aifkit/data/templates``, replaceable per site.

Every batch script aifkit writes is one of these files (``torchrun.sbatch``: a learner's
training job; ``grade-array.sbatch``: the grading job array; ``hub-spawner.sbatch``: a
learner's server under the factory hub). Their ``#SBATCH`` lines live in the template, not
in Python. A site profile may name a ``templates`` folder: a file there replaces the packaged
file of the same name, and the others stay packaged.

One Jinja2 set-up renders them all: ``StrictUndefined`` (a misspelt variable is an error, not an
empty string), ``keep_trailing_newline``, ``trim_blocks`` and ``lstrip_blocks`` (a ``{% if %}``
on its own line leaves no blank line), no HTML escaping, and two filters: ``quote`` (a shell
word, ``shlex.quote``) and ``slurm_time`` (minutes as SLURM's ``[D-]HH:MM:SS``).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import jinja2

from aifkit import resources
from aifkit.errors import AifkitError
from aifkit.slurm import format_time

PACKAGED = resources.data_path("templates")


class TemplateError(AifkitError):
    """A batch-script template is missing, malformed, or uses a value nobody gave it."""


def folders(site_folder: str | Path | None = None) -> list[Path]:
    """Where templates are looked up, in order: the site's folder (if any), then the packaged."""
    if not site_folder:
        return [PACKAGED]
    folder = Path(site_folder)
    if not folder.is_dir():
        raise TemplateError(
            f"templates folder {folder} does not exist: fix `templates:` in the site profile"
        )
    return [folder, PACKAGED]


def environment(site_folder: str | Path | None = None) -> jinja2.Environment:
    """The Jinja2 environment every batch script is rendered with."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folders(site_folder)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["quote"] = lambda value: shlex.quote(str(value))
    env.filters["slurm_time"] = format_time
    return env


def source(name: str, site_folder: str | Path | None = None) -> str:
    """The text of template ``name``: the site's copy if it has one, else the packaged one."""
    env = environment(site_folder)
    try:
        text, _, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
    except jinja2.TemplateNotFound as error:
        raise TemplateError(_not_found(name, site_folder)) from error
    return text


def render(name: str, site_folder: str | Path | None = None, **values: Any) -> str:
    """Render template ``name`` (the site's copy if it has one) with ``values``."""
    env = environment(site_folder)
    try:
        template = env.get_template(name)
    except jinja2.TemplateNotFound as error:
        raise TemplateError(_not_found(name, site_folder)) from error
    except jinja2.TemplateSyntaxError as error:
        raise TemplateError(f"{error.filename}:{error.lineno}: {error.message}") from error
    return _render(template, template.filename or name, values)


def render_text(text: str, *, label: str, **values: Any) -> str:
    """Render a template given as text (a configured one), with the same rules as the files."""
    try:
        template = environment().from_string(text)
    except jinja2.TemplateSyntaxError as error:
        raise TemplateError(f"{label}:{error.lineno}: {error.message}") from error
    return _render(template, label, values)


def _render(template: jinja2.Template, label: str, values: dict[str, Any]) -> str:
    try:
        return template.render(**values)
    except jinja2.UndefinedError as error:
        raise TemplateError(
            f"{label}: {error.message}; it can use: {', '.join(sorted(values))}"
        ) from error


def _not_found(name: str, site_folder: str | Path | None) -> str:
    where = ", ".join(str(folder) for folder in folders(site_folder))
    return f"no batch-script template {name!r} in {where}"
