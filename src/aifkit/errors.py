"""The small exception hierarchy of aifkit: every message says what, where and how to fix it."""

import click


class AifkitError(click.ClickException):
    """Base class of every error aifkit raises on purpose.

    A click exception, so that every ``aifkit`` command reports it the same way without a
    handler of its own: ``Error: <message>`` on stderr and exit status 2, "could not do the job"
    (1 stays "did the job and found problems": failing notebooks, lint findings, a submission
    the grader failed on). Elsewhere, a kernel included, it is a plain exception whose
    ``str()`` is the message.
    """

    exit_code = 2


class CatalogError(AifkitError):
    """The course catalog is missing, malformed or disagrees with the course folders."""


class TierError(AifkitError):
    """A tier name is unknown or cannot be resolved on this machine."""


class NotebookError(AifkitError):
    """A notebook cannot be read, linted or executed."""


class KernelSpecError(AifkitError):
    """A kernelspec is missing or cannot be installed."""


class LauncherError(AifkitError):
    """The kernel launcher cannot fit the environment (for example a bad AIFKIT_THREADS)."""


class FactsError(AifkitError):
    """A factory fact is unknown, or the facts data file is missing or malformed."""


class ResourceError(AifkitError):
    """A file the aifkit package ships is missing, or the package is not installed as files."""
