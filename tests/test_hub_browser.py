"""Real-browser journeys through the local training hub: Playwright drives Debian's chromium.

A learner logs in through the hub's form, JupyterLab loads, they fetch a01 from nbgrader's
Assignments panel, open it and run a cell, then fetch, answer, validate and submit the tiny
course's "adv"; the instructor logs in, opens the formgrader, collects and sees the submission.
Every step leaves a screenshot in build/test-artifacts/browser/<step>.png; a failing step adds
failure-<step>.png and .html (the page then) and the hub's log. The browser may only reach
127.0.0.1: any other request is aborted and fails the test.

Chromium is Debian's (/usr/bin/chromium, installed by scripts/system-deps.sh); nothing is
downloaded by `playwright install`.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import pytest
from builders import COURSES, REPO
from hub_fixture import COURSE_ID, INSTRUCTOR, LocalHub, record

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = REPO / "build" / "test-artifacts" / "browser"
LEARNER = "learner1"
A01 = "a01-welcome"
ADV = "adv"
HUB_START_TIMEOUT_S = 150  # a spawn took 56 s on a busy 2-core machine (the default is 60)
SPAWN_TIMEOUT_MS = 240_000  # login -> spawn -> JupyterLab
LAB_TIMEOUT_MS = 90_000
KERNEL_TIMEOUT_MS = 120_000  # first kernel start, or nbgrader's validation (runs the notebook)
ACTION_TIMEOUT_MS = 60_000
KERNEL_IDLE_STATUS = re.compile(r"\(AI Factory\) \| Idle$")  # the status bar's kernel item
LEARNER_TOOLS = {"Assignment List"}
INSTRUCTOR_TOOLS = {"Formgrader", "Formgrader (local)", "Course List", "Create assignment"}
LOCKED_PLUGINS = (
    "@jupyter/nbgrader:formgrader",
    "@jupyter/nbgrader:create-assignment",
    "@jupyter/nbgrader:course-list",
)
ANSWERS = {
    "def square": "def square(x):\n    return x * x\n",
    "def mean": "def mean(xs):\n    return sum(xs) / len(xs)\n",
}
WRITTEN_ANSWER = "Squaring never gives a negative number; the mean divides the sum by the count."

NEEDS_CHROMIUM = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} is missing: run scripts/system-deps.sh as root "
    "(apt-get install chromium); Playwright drives Debian's chromium, never a download",
)
pytestmark = [pytest.mark.browser, pytest.mark.slow, NEEDS_CHROMIUM]


class Journey:
    """Screenshots per step, step timings, and what to look at when a step fails."""

    def __init__(self, folder: Path, hub: LocalHub) -> None:
        self.folder = folder
        self.hub = hub
        self.timings: dict[str, float] = {}
        self.offsite: list[str] = []
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)

    def shot(self, page: Any, step: str) -> Path:
        path = self.folder / f"{step}.png"
        page.screenshot(path=str(path), full_page=False)
        return path

    @contextlib.contextmanager
    def step(self, name: str, page: Any) -> Iterator[None]:
        """Time the step and screenshot its end; on failure keep the page, its HTML, the log."""
        began = time.monotonic()
        try:
            yield
            self.shot(page, name)
        except BaseException:
            with contextlib.suppress(Exception):
                page.screenshot(path=str(self.folder / f"failure-{name}.png"))
            with contextlib.suppress(Exception):
                (self.folder / f"failure-{name}.html").write_text(page.content(), "utf-8")
            with contextlib.suppress(Exception):
                (self.folder / "jupyterhub.log").write_text(self.hub.log, "utf-8")
            raise
        finally:
            seconds = time.monotonic() - began
            self.timings[name] = seconds
            record(f"browser {name}", seconds)

    def context(self, browser: Any) -> Any:
        """A fresh browser context (own cookies) that can only reach the hub on 127.0.0.1."""
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        context.set_default_timeout(ACTION_TIMEOUT_MS)

        def guard(route: Any) -> None:
            url = route.request.url
            if urlparse(url).hostname == "127.0.0.1":
                route.continue_()
            else:
                self.offsite.append(url)
                route.abort()

        context.route("**/*", guard)
        return context


@contextlib.contextmanager
def headless_chromium() -> Iterator[Any]:
    """Debian's chromium, headless, driven by Playwright; closed on leaving."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    with headless_chromium() as chromium:
        yield chromium


@pytest.fixture
def course_hub(make_hub: Callable[..., LocalHub], tmp_path: Path) -> LocalHub:
    """The tiny course plus a01 (copied from courses/), both released; one learner."""
    hub = make_hub(
        tmp_path,
        learners=(LEARNER,),
        release=[A01, ADV],
        start_timeout=HUB_START_TIMEOUT_S,
        start=False,
    )
    shutil.copytree(COURSES / A01, hub.course_root / "source" / A01)
    hub.start()
    return hub


def login(page: Any, hub: LocalHub, username: str, next_url: str = "") -> None:
    target = hub.url + "hub/login" + (f"?next={quote(next_url)}" if next_url else "")
    page.goto(target)
    page.get_by_label("Username:").fill(username)
    page.locator("#password_input").fill(hub.password)


def exact(text: str) -> re.Pattern[str]:
    return re.compile(rf"^\s*{re.escape(text)}\s*$")


def listed(page: Any, section: str, assignment: str) -> Any:
    """An assignment's row in one section (released, fetched, submitted) of the panel."""
    name = page.locator(".col-md-12 > .item_name", has_text=exact(assignment))
    return page.locator(f"#{section}_assignments_list > .list_item").filter(has=name)


def fetch(page: Any, assignment: str) -> Any:
    """Click Fetch on a released assignment; its row under Downloaded assignments."""
    listed(page, "released", assignment).get_by_role("button", name="Fetch").click()
    row = listed(page, "fetched", assignment)
    row.get_by_role("button", name="Submit").wait_for()
    return row


def notebooks_of(page: Any, assignment: str) -> Any:
    """Expand a downloaded assignment: its notebooks, each with a link and Validate."""
    row = listed(page, "fetched", assignment)
    notebooks = page.locator(f"#nbgrader-{COURSE_ID}-{assignment}")
    if not notebooks.is_visible():
        row.locator("a.assignment-notebooks-link").click()
    notebooks.wait_for(state="visible")
    return notebooks


def open_notebook_from_panel(page: Any, assignment: str, notebook: str) -> Any:
    """Open a downloaded notebook through the panel; its notebook panel, once shown."""
    notebooks_of(page, assignment).get_by_role("link", name=notebook, exact=True).click()
    tab = page.locator(".lm-TabBar-tab.lm-mod-current", has_text=f"{notebook}.ipynb")
    tab.first.wait_for(timeout=LAB_TIMEOUT_MS)
    shown = page.locator(".jp-NotebookPanel:visible").filter(has=page.locator(".jp-Cell"))
    shown.first.wait_for(timeout=LAB_TIMEOUT_MS)
    # pinned by id: once another tab is in front, ":visible" would find another panel
    return page.locator(f'[id="{shown.first.get_attribute("id")}"]')


def wait_kernel_idle(page: Any, panel: Any) -> None:
    """Wait until the notebook's kernel is connected and idle, as the status bar says.

    The toolbar's execution indicator starts out 'idle' before any kernel is attached; a cell
    run then is silently dropped by JupyterLab (seen here: the first Shift+Enter sent nothing).
    """
    panel.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(
        timeout=KERNEL_TIMEOUT_MS
    )
    status = page.locator(".jp-StatusBar-Widget").get_by_text(KERNEL_IDLE_STATUS)
    status.wait_for(timeout=KERNEL_TIMEOUT_MS)


def code_cell(page: Any, notebook: Any, source: str) -> Any:
    """The code cell whose source is exactly ``source`` (markdown may quote the same code)."""
    lines = page.locator(".cm-content", has_text=exact(source.replace("\n", "")))
    return notebook.locator(".jp-CodeCell").filter(has=lines)


def run_cell(page: Any, cell: Any) -> Any:
    """Select the cell, Shift+Enter, and wait until it has run (its prompt shows [n]).

    A kernel that was still connecting can drop the very first request (seen once under heavy
    load): then the cell is run once more, as a learner would, before the step fails.
    """
    done = re.compile(r"\[\d+\]")
    for attempt in (1, 2):
        cell.locator(".jp-InputPrompt").click()
        cell.and_(page.locator(".jp-mod-active")).wait_for()
        page.keyboard.press("Shift+Enter")
        try:
            cell.locator(".jp-InputPrompt", has_text=done).wait_for(timeout=KERNEL_TIMEOUT_MS // 2)
            return cell
        except Exception:
            # kept as evidence: a retry that is needed every time is a bug, not load
            with contextlib.suppress(Exception):
                page.screenshot(path=str(ARTIFACTS / f"run-cell-retried-{time.time():.0f}.png"))
            if attempt == 2:
                raise
    return cell


def show_assignments(page: Any) -> None:
    """Bring the Assignments panel to the front (opened from the Nbgrader menu before)."""
    page.locator(".lm-TabBar-tab", has_text=exact("Assignments")).click()
    page.locator("#nbgrader-assignment-list").wait_for(state="visible")


def nbgrader_menu_labels(page: Any) -> set[str]:
    """The entries the learner sees in the Nbgrader menu (it stays open)."""
    page.locator(".lm-MenuBar-item", has_text=exact("Nbgrader")).click()
    menu = page.locator("#jp-mainmenu-nbgrader")
    menu.wait_for(state="visible")
    labels = menu.locator(".lm-Menu-item:visible .lm-Menu-itemLabel").all_inner_texts()
    return {label.strip() for label in labels if label.strip()}


def learner_journey(journey: Journey, browser: Any, hub: LocalHub) -> None:
    context = journey.context(browser)
    page = context.new_page()
    lab = re.compile(rf"/user/{LEARNER}/lab")

    with journey.step("01-login", page):
        login(page, hub, LEARNER)

    with journey.step("02-lab", page):
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lab, timeout=SPAWN_TIMEOUT_MS)
        page.locator(".jp-DirListing-content").wait_for(timeout=LAB_TIMEOUT_MS)
        page.locator(".lm-MenuBar-item", has_text=exact("Nbgrader")).wait_for()
        config = json.loads(page.locator("#jupyter-config-data").text_content() or "{}")
        for key in ("disabledExtensions", "lockedExtensions"):
            listed_there = str(config.get(key))
            missing = [p for p in LOCKED_PLUGINS if p not in listed_there]
            assert not missing, (
                f"the learner's lab lacks {missing} in {key}: aifkit/data/hub/singleuser/learner/"
                f"labconfig/page_config.json was not applied; {key}={listed_there}"
            )
        # and the server side agrees: no formgrader on the learner's server, none as a service
        own = page.request.get(f"{hub.url}user/{LEARNER}/formgrader")
        assert own.status == 404, f"the learner's server serves /formgrader ({own.status})"
        service = page.request.get(f"{hub.url}services/{COURSE_ID}/formgrader")
        assert service.status == 403, f"the learner reached the formgrader ({service.status})"
        seen = nbgrader_menu_labels(page)  # left open for the screenshot
        assert seen >= LEARNER_TOOLS, f"the learner's Nbgrader menu lacks {LEARNER_TOOLS - seen}"
        assert not seen & INSTRUCTOR_TOOLS, (
            f"the learner's Nbgrader menu offers instructor tools {seen & INSTRUCTOR_TOOLS}"
        )

    with journey.step("03-a01-open", page):
        page.locator("#jp-mainmenu-nbgrader").get_by_text("Assignment List").click()
        fetch(page, A01)
        notebook = open_notebook_from_panel(page, A01, A01)
        wait_kernel_idle(page, notebook)

    with journey.step("04-cell-ran", page):
        run_cell(page, code_cell(page, notebook, "counter = 0"))
        ran = run_cell(
            page, code_cell(page, notebook, 'counter += 1\nprint(f"counter = {counter}")')
        )
        ran.locator(".jp-OutputArea-output", has_text="counter = 1").wait_for()

    with journey.step("05-assignments", page):
        show_assignments(page)
        listed(page, "released", ADV).get_by_role("button", name="Fetch").wait_for()
        listed(page, "fetched", A01).wait_for()

    with journey.step("06-fetched", page):
        fetch(page, ADV)
        notebooks_of(page, ADV)

    with journey.step("07-validated", page):
        notebook = open_notebook_from_panel(page, ADV, ADV)
        for start, answer in ANSWERS.items():
            cell = notebook.locator(".jp-CodeCell", has_text=start)
            cell.locator(".cm-content").click()
            page.keyboard.press("Control+a")
            page.keyboard.insert_text(answer)
        written = notebook.locator(".jp-MarkdownCell", has_text="YOUR ANSWER HERE")
        written.dblclick()  # a rendered markdown cell opens its editor on a double click
        written.locator(".cm-content").click()
        page.keyboard.press("Control+a")
        page.keyboard.insert_text(WRITTEN_ANSWER)
        notebook.locator(".validate-button").click()  # nbgrader's button: save, then validate
        dialog = page.locator(".jp-Dialog", has_text="Validation Results")
        dialog.wait_for(timeout=KERNEL_TIMEOUT_MS)
        text = dialog.inner_text()
        assert "Success! Your notebook passes all the tests." in text, text

    with journey.step("08-submitted", page):
        dialog.get_by_role("button", name="Ok").click()
        dialog.wait_for(state="detached")
        show_assignments(page)
        listed(page, "fetched", ADV).get_by_role("button", name="Submit").click()
        stamp = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")  # the submission's time
        listed(page, "submitted", ADV).locator(".nested_list_item", has_text=stamp).wait_for()

    context.close()


def instructor_journey(journey: Journey, browser: Any, hub: LocalHub) -> None:
    context = journey.context(browser)
    page = context.new_page()
    formgrader = f"/services/{COURSE_ID}/formgrader"

    with journey.step("09-formgrader", page):
        login(page, hub, INSTRUCTOR, next_url=formgrader)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(re.escape(formgrader)), timeout=SPAWN_TIMEOUT_MS)
        row = page.locator("tr").filter(has=page.locator("td.name", has_text=exact(ADV)))
        row.locator("td.collect a").click()  # collect: exchange inbound -> submitted/
        modal = page.locator(".modal", has_text=f"Successfully collected submissions of '{ADV}'")
        modal.wait_for(state="visible", timeout=KERNEL_TIMEOUT_MS)
        modal.get_by_role("button", name="Close").first.click()
        modal.wait_for(state="hidden")
        row.locator("td.num-submissions", has_text=exact("1")).wait_for()

    with journey.step("10-submission-listed", page):
        row.locator("td.num-submissions a").click()
        page.wait_for_url(re.compile(rf"manage_submissions/{ADV}"))
        page.locator("tr", has_text=LEARNER).first.wait_for()

    context.close()


def test_learner_submits_and_instructor_sees_it(browser: Any, course_hub: LocalHub) -> None:
    """The whole course loop, clicked through as people do it, with a screenshot per step."""
    journey = Journey(ARTIFACTS, course_hub)
    began = time.monotonic()
    learner_journey(journey, browser, course_hub)
    instructor_journey(journey, browser, course_hub)
    record("browser journey", time.monotonic() - began)
    (journey.folder / "timings.json").write_text(json.dumps(journey.timings, indent=1), "utf-8")
    assert not journey.offsite, f"the browser tried to leave 127.0.0.1: {journey.offsite}"
    submitted = course_hub.course_root / "submitted" / LEARNER / ADV / f"{ADV}.ipynb"
    assert submitted.is_file(), f"collect did not file the submission at {submitted}"
    assert "return x * x" in submitted.read_text(encoding="utf-8"), "the typed answer is lost"
    shots = sorted(p.name for p in journey.folder.glob("[0-9]*.png"))
    assert len(shots) == 10, shots
