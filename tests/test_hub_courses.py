"""Several courses on one real hub: each its formgrader, its instructors, its learners.

Two courses, ml101 (taught by ada; alice and bob learn) and hpc201 (taught by grace; bob
learns), each with the test course's assignment "adv" released in its own folder of the
exchange. On the real local hub (JupyterHub, configurable-http-proxy, two formgrader services):
an instructor opens their own course's formgrader and is refused the other's; a learner is
refused both; a learner lists, fetches and submits only in their own courses, a learner of two
courses sees both and gets each assignment under ``<course>/<assignment>``. In the real
browser, an instructor of one course grades it and is refused the other (screenshots in
build/test-artifacts/browser-courses/).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from hub_client import HubSession
from hub_fixture import SPAWN_TIMEOUT_S, HubFactory, LocalHub
from test_hub_browser import (  # the browser journeys' fixture and helpers
    ADV,
    ARTIFACTS,
    CHROMIUM,
    SPAWN_TIMEOUT_MS,
    Journey,
    browser,  # noqa: F401  (a fixture)
    exact,
    login,
)

pytestmark = pytest.mark.hub

COURSES = [
    {"id": "ml101", "instructors": ["ada"], "learners": ["alice", "bob"]},
    {"id": "hpc201", "instructors": ["grace"], "learners": ["bob"]},
]


@pytest.fixture(scope="module")
def hub(make_module_hub: HubFactory, tmp_path_factory: pytest.TempPathFactory) -> LocalHub:
    return make_module_hub(tmp_path_factory.mktemp("courses"), courses=COURSES)


def _formgrader(user: HubSession, course: str) -> list[requests.Response]:
    return user.follow(f"services/{course}/formgrader")


def _denied(chain: list[requests.Response], course: str) -> bool:
    """Sent to the hub's OAuth page for the course's service, which answers 403."""
    last = chain[-1]
    where = urlparse(last.url)
    return (
        last.status_code == 403
        and where.path == "/hub/api/oauth2/authorize"
        and parse_qs(where.query).get("client_id") == [f"service-{course}"]
    )


def test_each_instructor_reaches_only_their_courses_formgrader(hub: LocalHub) -> None:
    for instructor, own, other in (("ada", "ml101", "hpc201"), ("grace", "hpc201", "ml101")):
        user = hub.session(instructor)
        chain = _formgrader(user, own)
        assert chain[-1].status_code == 200, [(r.status_code, r.url) for r in chain]
        assert urlparse(chain[-1].url).path == f"/services/{own}/formgrader/manage_assignments"
        assert _denied(_formgrader(user, other), other), [(r.status_code, r.url) for r in chain]
    bob = hub.session("bob")
    for course in ("ml101", "hpc201"):
        assert _denied(_formgrader(bob, course), course), f"bob reached {course}'s formgrader"


@pytest.fixture(scope="module")
def servers(hub: LocalHub) -> Iterator[dict[str, HubSession]]:
    sessions = {name: hub.session(name) for name in ("alice", "bob")}
    for session in sessions.values():
        session.start_server(timeout=SPAWN_TIMEOUT_S)
    yield sessions
    for session in sessions.values():
        session.stop_server()


def _listed(user: HubSession, course: str = "") -> set[tuple[str, str]]:
    reply = user.server_api("GET", "assignments", params={"course_id": course})
    assert reply.status_code == 200, reply.text[:1000]
    listing = reply.json()
    assert listing["success"], listing
    return {(a["course_id"], a["assignment_id"]) for a in listing["value"]}


def test_learners_see_only_the_assignments_of_their_courses(
    servers: dict[str, HubSession],
) -> None:
    alice, bob = servers["alice"], servers["bob"]
    assert _listed(alice) == {("ml101", "adv")}
    assert _listed(alice, "hpc201") == set(), "alice is not in hpc201"
    assert _listed(bob) == {("ml101", "adv"), ("hpc201", "adv")}


def test_fetch_and_submit_stay_in_the_learners_courses(
    hub: LocalHub, servers: dict[str, HubSession]
) -> None:
    alice, bob = servers["alice"], servers["bob"]
    refused = alice.server_api(
        "POST", "assignments/fetch", data={"course_id": "hpc201", "assignment_id": "adv"}
    )
    assert not (hub.state / "home" / "alice" / "hpc201").exists(), refused.text[:500]
    for course in ("ml101", "hpc201"):
        reply = bob.server_api(
            "POST", "assignments/fetch", data={"course_id": course, "assignment_id": "adv"}
        )
        assert reply.status_code == 200 and reply.json()["success"], reply.text[:1000]
        notebook = hub.state / "home" / "bob" / course / "adv" / "adv.ipynb"
        assert notebook.is_file(), sorted(str(p) for p in (hub.state / "home" / "bob").rglob("*"))
        reply = bob.server_api(
            "POST", "assignments/submit", data={"course_id": course, "assignment_id": "adv"}
        )
        assert reply.status_code == 200 and reply.json()["success"], reply.text[:1000]
        inbound = hub.exchange / course / "inbound"
        assert [p.name.split("+")[:2] for p in inbound.iterdir()] == [["bob", "adv"]]
    assert not list((hub.exchange / "ml101" / "inbound").glob("alice+*"))


def test_each_course_has_its_own_gradebook(hub: LocalHub) -> None:
    folders = {Path(c["root"]).name for c in _courses(hub)}
    assert folders == {"ml101", "hpc201"}
    for course in _courses(hub):
        assert (Path(course["root"]) / "gradebook.db").is_file()


def _courses(hub: LocalHub) -> list[dict[str, object]]:
    import yaml

    courses: list[dict[str, object]] = yaml.safe_load(hub.config_path.read_text())["courses"]
    return courses


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: scripts/system-deps.sh")
def test_an_instructor_of_one_course_sees_only_its_formgrader(
    browser: Any,  # noqa: F811  (the fixture imported above)
    hub: LocalHub,
) -> None:
    """ada logs in through the hub's form, grades ml101, and hpc201's formgrader refuses her."""
    journey = Journey(ARTIFACTS.parent / "browser-courses", hub)
    context = journey.context(browser)
    page = context.new_page()
    own, other = "/services/ml101/formgrader", "/services/hpc201/formgrader"

    with journey.step("01-own-course-formgrader", page):
        login(page, hub, "ada", next_url=own)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(re.escape(own)), timeout=SPAWN_TIMEOUT_MS)
        page.locator("td.name", has_text=exact(ADV)).wait_for()

    with journey.step("02-other-course-refused", page):
        reply = page.goto(hub.url + other.lstrip("/"))
        assert reply is not None and reply.status == 403, reply and reply.url
        page.get_by_text("403").first.wait_for()

    context.close()
    assert not journey.offsite, f"the browser tried to leave 127.0.0.1: {journey.offsite}"
    shots = sorted(p.name for p in journey.folder.glob("[0-9]*.png"))
    assert shots == ["01-own-course-formgrader.png", "02-other-course-refused.png"], shots
