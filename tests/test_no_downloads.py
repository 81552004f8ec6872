"""Nothing loads weights or data from a hub at run time: every notebook and all of src/ prove it.

Each notebook's code cells and each module under src/ are parsed (ast, not grep: a call in a
string or a comment is no call) and every hub load is reported with its file and line:
``from_pretrained`` of a name that is not a local path, ``hf_hub_download``, ``snapshot_download``,
``load_dataset`` of a hub data set, ``torch.hub``, and ``urlopen``/``urlretrieve``/``requests``/
``httpx`` of a literal URL off 127.0.0.1. The kernels run with HF_HUB_OFFLINE=1 and
TRANSFORMERS_OFFLINE=1 as a second line of defence (aifkit.launcher).
"""

from __future__ import annotations

import ast
from pathlib import Path
from urllib.parse import urlparse

import pytest
from builders import COURSES

from aifkit import launcher
from aifkit.notebooks import reading

SRC = Path(__file__).resolve().parents[1] / "src"
HUB_ONLY = {"hf_hub_download", "snapshot_download", "cached_download", "hf_hub_url"}
URL_READERS = {"urlopen", "urlretrieve", "get", "post", "request", "stream"}
URL_MODULES = {"requests", "httpx", "urllib", "request", "urllib3"}
LOCAL_BUILDERS = {"json", "csv", "text", "parquet", "arrow", "imagefolder", "audiofolder"}
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _name(func: ast.expr) -> tuple[str, str]:
    """(object, attribute) of a called function: ('torch.hub', 'load'), ('', 'urlopen')."""
    if isinstance(func, ast.Attribute):
        return ast.unparse(func.value), func.attr
    if isinstance(func, ast.Name):
        return "", func.id
    return "", ""


def _first_argument(call: ast.Call, *keywords: str) -> ast.expr | None:
    if call.args:
        return call.args[0]
    return next((k.value for k in call.keywords if k.arg in keywords), None)


def _literal(node: ast.expr | None) -> str | None:
    """The text of a string literal (the constant head of an f-string), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values:
        return _literal(node.values[0])
    return None


def _remote_url(text: str | None) -> bool:
    if text is None or not text.startswith(("http://", "https://", "ftp://")):
        return False
    return urlparse(text).hostname not in LOCAL_HOSTS


def hub_loads(source: str) -> list[tuple[int, str]]:
    """(line, what) for every hub load or remote fetch in Python ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        owner, attr = _name(node.func)
        if attr == "from_pretrained":
            name = _literal(_first_argument(node, "pretrained_model_name_or_path"))
            if name is not None and not name.startswith(("/", ".", "~")):
                found.append((node.lineno, f"from_pretrained({name!r}) loads from the hub"))
        elif attr in HUB_ONLY:
            found.append((node.lineno, f"{attr}() downloads from the Hugging Face hub"))
        elif attr == "load_dataset":
            builder = _literal(_first_argument(node, "path"))
            if builder not in LOCAL_BUILDERS:
                found.append((node.lineno, f"load_dataset({builder!r}) loads a hub data set"))
        elif owner == "torch.hub" or owner.startswith("torch.hub."):
            found.append((node.lineno, f"torch.hub.{attr}() downloads"))
        elif attr in URL_READERS and (owner == "" or owner.split(".")[-1] in URL_MODULES):
            url = _literal(_first_argument(node, "url"))
            if _remote_url(url):
                found.append((node.lineno, f"{attr}({url!r}) fetches from off this machine"))
    return found


def _notebook_sources(path: Path) -> list[tuple[int, str]]:
    """(cell index, code with IPython magics and shell lines blanked) for each code cell."""
    cells = []
    for index, cell in reading.code_cells(reading.read(path)):
        lines = reading.source_of(cell).splitlines()
        cells.append(
            (index, "\n".join("" if ln.lstrip().startswith(("!", "%")) else ln for ln in lines))
        )
    return cells


def scan() -> list[str]:
    """Every hub load in the course notebooks and in src/, as 'file:line: what'."""
    findings = []
    for module in sorted(SRC.rglob("*.py")):
        for line, what in hub_loads(module.read_text(encoding="utf-8")):
            findings.append(f"{module.relative_to(SRC.parent)}:{line}: {what}")
    for notebook in sorted(COURSES.rglob("*.ipynb")):
        for index, source in _notebook_sources(notebook):
            for line, what in hub_loads(source):
                findings.append(
                    f"{notebook.relative_to(COURSES.parent)} cell {index} line {line}: {what}"
                )
    return findings


def test_no_notebook_and_no_module_loads_from_a_hub() -> None:
    """Does every notebook and every module under src/ load its weights and data locally?"""
    findings = scan()
    assert not findings, (
        "hub loads found (bundle the file, or make it with a script):\n" + "\n".join(findings)
    )


BAD = {
    "AutoModelForCausalLM.from_pretrained('gpt2')": "from_pretrained('gpt2')",
    "tok = AutoTokenizer.from_pretrained(pretrained_model_name_or_path='org/model')": "from_pretrained",
    "from huggingface_hub import hf_hub_download\npath = hf_hub_download('org/m', 'w.bin')": "hf_hub_download",
    "huggingface_hub.snapshot_download(repo_id='org/m')": "snapshot_download",
    "ds = datasets.load_dataset('wikitext', 'wikitext-2-raw-v1')": "load_dataset('wikitext')",
    "m = torch.hub.load('pytorch/vision', 'resnet18')": "torch.hub.load",
    "urllib.request.urlopen('https://example.org/data.csv')": "urlopen",
    "requests.get(f'https://example.org/{name}')": "get('https://example.org/')",
    "urlretrieve('http://10.0.0.5/w.bin', 'w.bin')": "urlretrieve",
}
GOOD = [
    "model = AutoModelForCausalLM.from_pretrained(CHECKPOINT_DIR)",
    "model = AutoModelForCausalLM.from_pretrained('./checkpoints/tiny')",
    "ds = load_dataset('json', data_files='shard.jsonl')",
    "urlopen('http://127.0.0.1:8000/generate')",
    "requests.get(f'http://localhost:{port}/health')",
    "urlopen(self.url + 'hub/health')",
    "text = 'call hf_hub_download() never'  # a string, not a call",
]


@pytest.mark.parametrize("snippet", list(BAD), ids=range(len(BAD)))
def test_the_scanner_catches_every_kind_of_hub_load(snippet: str) -> None:
    """Would a notebook that loads from a hub be caught, with what it does named?"""
    ((line, what),) = hub_loads(snippet)
    assert BAD[snippet] in what and line >= 1


@pytest.mark.parametrize("snippet", GOOD)
def test_local_loads_are_not_flagged(snippet: str) -> None:
    """Are local checkpoints, local data files and 127.0.0.1 endpoints left alone?"""
    assert hub_loads(snippet) == []


def test_a_bad_notebook_is_reported_with_file_and_cell(tmp_path: Path) -> None:
    """Does the scan of a notebook name the cell and line of its hub load?"""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("!pip list\nimport torch"),
        nbformat.v4.new_code_cell(
            "x = 1\nw = torch.hub.load_state_dict_from_url('https://x.org/w')"
        ),
    ]
    path = tmp_path / "bad.ipynb"
    nbformat.write(nb, path)
    ((index, source),) = [(i, s) for i, s in _notebook_sources(path) if hub_loads(s)]
    assert index == 1 and hub_loads(source) == [
        (2, "torch.hub.load_state_dict_from_url() downloads")
    ]


def test_kernels_run_offline_for_hugging_face() -> None:
    """Does every aifkit kernel start with the Hugging Face libraries told to stay offline?"""
    env = launcher.fit_environment({"HF_HUB_OFFLINE": "0", "PATH": "/usr/bin"}, affinity=2)
    assert env["HF_HUB_OFFLINE"] == "1" and env["TRANSFORMERS_OFFLINE"] == "1"
    assert {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"} <= set(launcher.managed_names())
