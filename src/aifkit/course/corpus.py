"""The text corpus of track E, bundled: English prose that needs no download.

``corpus-python-docs.txt`` (in ``aifkit/data/samples``, checksum in ``SHA256SUMS``) holds the
docstrings of a fixed list of Python standard library modules (Python Software Foundation
License), cleaned into paragraphs. It is made once by ``python -m aifkit.course.corpus --build``
and shipped, so every machine and Python version trains on the same bytes.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import textwrap

from aifkit.course import datasets

NAME = "corpus-python-docs.txt"
MODULES = (
    "argparse", "asyncio", "base64", "bisect", "calendar", "collections", "concurrent.futures",
    "contextlib", "csv", "dataclasses", "datetime", "decimal", "difflib", "email", "enum",
    "fractions", "functools", "gzip", "hashlib", "heapq", "html", "http.client", "http.server",
    "inspect", "io", "ipaddress", "itertools", "json", "logging", "mailbox", "multiprocessing",
    "numbers", "operator", "os", "pathlib", "pickle", "pprint", "queue", "random", "re",
    "sched", "secrets", "shutil", "socket", "sqlite3", "statistics", "string", "subprocess",
    "tarfile", "tempfile", "textwrap", "threading", "timeit", "tokenize", "typing", "unittest",
    "urllib.parse", "uuid", "warnings", "weakref", "zipfile",
)  # fmt: skip


def text() -> str:
    """The bundled corpus (checksum verified)."""
    return datasets.sample_text(NAME)


def _docstrings(module_name: str) -> list[str]:
    """The module's docstring, then its public classes' and functions' docstrings, in order."""
    module = importlib.import_module(module_name)
    found = [inspect.getdoc(module) or ""]
    for name in sorted(vars(module)):
        member = getattr(module, name)
        if name.startswith("_") or getattr(member, "__module__", None) != module.__name__:
            continue
        if inspect.isclass(member) or inspect.isfunction(member):
            found.append(inspect.getdoc(member) or "")
    return [textwrap.dedent(doc).strip() for doc in found if len(doc) > 40]


def build() -> str:
    """Collect the corpus from this Python's standard library (run once, then ship the file)."""
    return "\n\n".join(doc for name in MODULES for doc in _docstrings(name)) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] == ["--build"]:
        (datasets.SAMPLES_DIR / NAME).write_text(build(), encoding="utf-8")
        datasets.update_manifest()
        print(f"wrote {datasets.SAMPLES_DIR / NAME}; SHA256SUMS updated")
    else:
        print(__doc__)
