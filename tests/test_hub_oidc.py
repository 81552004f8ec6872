"""The factory's login through a real OpenID Connect provider, clicked through in a real browser.

The hub takes its OIDC settings from hub-config/factory/config.yml (username claim, scopes,
group claim, allowed and instructor groups) and only the provider's issuer: its endpoints come
from the discovery document at hub start. The provider is glewlwyd (tests/oidc_fixture.py);
people sign in on its own login page. Servers are local processes and none is started: the
login, the landing page, the formgrader and the refusal page are what OIDC decides.

Screenshots go to build/test-artifacts/browser-oidc/ (the provider's login page, a refused
user, and every step); a failing step adds its page, its HTML and the hub's log.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import pytest
import yaml
from builders import REPO
from hub_fixture import COURSE_ID, HubFactory, LocalHub, record
from oidc_fixture import GROUPS, INSTRUCTORS_GROUP, LEARNERS_GROUP, OidcProvider
from test_hub_browser import NEEDS_CHROMIUM, headless_chromium

from aifkit.hub import check

ARTIFACTS = REPO / "build" / "test-artifacts" / "browser-oidc"
FACTORY = REPO / "hub-config" / "factory" / "config.yml"
ACTION_TIMEOUT_MS = 30_000
NONCE = "aifkit-test-nonce"  # glewlwyd insists on a nonce in the code flow (see docs/hub.md)

pytestmark = [pytest.mark.browser, pytest.mark.slow, NEEDS_CHROMIUM]


def factory_oidc(provider: OidcProvider, callback_url: str) -> dict[str, Any]:
    """The factory profile's oidc section and allowed groups, pointed at the test provider."""
    factory = yaml.safe_load(FACTORY.read_text(encoding="utf-8"))
    oidc = dict(factory["oidc"])
    for endpoint in ("authorize_url", "token_url", "userdata_url"):
        oidc.pop(endpoint)  # from the discovery document
    oidc.update(
        issuer=provider.issuer,
        client_secret_file=str(provider.client_secret_file),
        callback_url=callback_url,
        authorize_params={"nonce": NONCE},
    )
    return {"auth": "oidc", "oidc": oidc, "allowed_groups": factory["allowed_groups"]}


@pytest.fixture(scope="module")
def oidc_hub(
    make_module_hub: HubFactory,
    oidc_provider: OidcProvider,
    tmp_path_factory: pytest.TempPathFactory,
) -> LocalHub:
    """One hub for the module: local servers, the factory's OIDC login against the provider."""
    hub = make_module_hub(tmp_path_factory.mktemp("oidc-hub"), start=False)
    callback = f"http://127.0.0.1:{hub.port}/hub/oauth_callback"
    config = yaml.safe_load(hub.config_path.read_text(encoding="utf-8"))
    config.update(factory_oidc(oidc_provider, callback))
    hub.config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    oidc_provider.register_callback(callback)
    hub.start()  # the factory's OIDC settings made JupyterHub exit at start before (issue 17)
    return hub


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with headless_chromium() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def artifacts() -> Path:
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS


class Visit:
    """One person's browser context (own cookies), kept to 127.0.0.1, with screenshots."""

    def __init__(self, browser: Any, hub: LocalHub, folder: Path, name: str) -> None:
        self.hub, self.folder, self.name = hub, folder, name
        self.offsite: list[str] = []
        self.context = browser.new_context(viewport={"width": 1280, "height": 800})
        self.context.set_default_timeout(ACTION_TIMEOUT_MS)
        self.context.route("**/*", self._guard)
        self.page = self.context.new_page()

    def _guard(self, route: Any) -> None:
        if urlparse(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            self.offsite.append(route.request.url)
            route.abort()

    def shot(self, step: str) -> Path:
        path = self.folder / f"{self.name}-{step}.png"
        self.page.screenshot(path=str(path))
        return path

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time the step and screenshot its end; on failure keep the page, its HTML, the log."""
        began = time.monotonic()
        try:
            yield
            self.shot(name)
        except BaseException:
            with contextlib.suppress(Exception):
                self.shot(f"failure-{name}")
            with contextlib.suppress(Exception):
                html = self.folder / f"{self.name}-failure-{name}.html"
                html.write_text(self.page.content(), "utf-8")
            with contextlib.suppress(Exception):
                (self.folder / "jupyterhub.log").write_text(self.hub.log, "utf-8")
            raise
        finally:
            record(f"oidc {name}", time.monotonic() - began)

    def sign_in(self, username: str, password: str, next_url: str = "/hub/home") -> None:
        """Hub login page -> the provider's own login page -> back to the hub."""
        page = self.page
        page.goto(f"{self.hub.url}hub/login?next={quote(next_url)}")
        page.get_by_role("button", name=re.compile("Sign in with")).click()
        page.locator("#username").wait_for()  # the provider's page, on the provider's port
        assert urlparse(page.url).port != self.hub.port, page.url
        page.locator("#username").fill(username)
        page.locator("#password").fill(password)
        self.shot("provider-login")
        page.locator("#loginbut").click()
        # the provider confirms who signs in to which client, then sends them back to the hub
        page.get_by_role("button", name=re.compile("Continue")).click()
        page.wait_for_url(re.compile(rf"127\.0\.0\.1:{self.hub.port}/"))

    def close(self) -> None:
        self.context.close()
        assert not self.offsite, f"the browser tried to leave 127.0.0.1: {self.offsite}"


@pytest.fixture
def visit(browser: Any, oidc_hub: LocalHub, artifacts: Path) -> Iterator[Any]:
    """``visit(name)``: a fresh browser context; all are closed (and checked) afterwards."""
    opened: list[Visit] = []

    def make(name: str) -> Visit:
        opened.append(Visit(browser, oidc_hub, artifacts, name))
        return opened[-1]

    yield make
    for one in opened:
        one.close()


def hub_user(visit: Visit) -> dict[str, Any]:
    """The signed-in user's model, as the hub's API gives it to their own browser."""
    reply = visit.page.request.get(
        f"{visit.hub.url}hub/api/user", headers={"Sec-Fetch-Mode": "navigate"}
    )
    assert reply.status == 200, f"/hub/api/user: {reply.status} {reply.text()[:300]}"
    model: dict[str, Any] = reply.json()
    return model


def test_learner_signs_in_on_the_provider_page_under_preferred_username(
    visit: Any, oidc_provider: OidcProvider
) -> None:
    """Does lena land on the hub as 'lena' (never her e-mail), in her provider group only?"""
    lena = visit("lena")
    with lena.step("home"):
        lena.sign_in("lena", oidc_provider.user_password)
        lena.page.wait_for_url(re.compile(r"/hub/home"))
        user = hub_user(lena)
        assert user["name"] == "lena", user
        assert "@" not in user["name"]
        assert user["groups"] == [LEARNERS_GROUP], user
    provider_page = ARTIFACTS / "lena-provider-login.png"
    assert provider_page.stat().st_size > 10_000, "the provider's login page was not captured"
    formgrader = lena.page.request.get(f"{lena.hub.url}services/{COURSE_ID}/formgrader")
    assert formgrader.status == 403, f"a learner reached the formgrader ({formgrader.status})"


def test_instructor_group_reaches_the_formgrader(visit: Any, oidc_provider: OidcProvider) -> None:
    """Does ines, in the provider's instructor group, open the course's formgrader?"""
    ines = visit("ines")
    target = f"/services/{COURSE_ID}/formgrader"
    with ines.step("formgrader"):
        ines.sign_in("ines", oidc_provider.user_password, next_url=target)
        ines.page.wait_for_url(re.compile(re.escape(target)))
        ines.page.get_by_text("adv", exact=True).first.wait_for()
    assert hub_user(ines)["groups"] == [INSTRUCTORS_GROUP]


def test_user_outside_the_allowed_groups_is_refused_with_the_reason(
    visit: Any, oidc_provider: OidcProvider
) -> None:
    """Is otto, known to the provider but in no allowed group, refused by a page saying why?"""
    otto = visit("otto")
    with otto.step("refused"):
        otto.sign_in("otto", oidc_provider.user_password)
        body = otto.page.locator("body")
        body.get_by_text("403").first.wait_for()
        text = " ".join(body.inner_text().split())
        assert "not in a group that may use this hub" in text, text
        assert LEARNERS_GROUP in text and INSTRUCTORS_GROUP in text, text
    assert (ARTIFACTS / "otto-refused.png").is_file()
    home = otto.page.goto(f"{otto.hub.url}hub/home")
    assert home is not None and "/hub/login" in otto.page.url, "a refused user got a session"


def test_logout_ends_the_hub_session(visit: Any, oidc_provider: OidcProvider) -> None:
    """After logout, does the hub ask for a login again (the provider's session is its own)?"""
    lena = visit("lena-logout")
    lena.sign_in("lena", oidc_provider.user_password)
    lena.page.wait_for_url(re.compile(r"/hub/home"))
    with lena.step("logged-out"):
        lena.page.goto(f"{lena.hub.url}hub/logout")
        lena.page.goto(f"{lena.hub.url}hub/home")
        lena.page.wait_for_url(re.compile(r"/hub/login"))
    reply = lena.page.request.get(
        f"{lena.hub.url}hub/api/user", headers={"Sec-Fetch-Mode": "navigate"}
    )
    assert reply.status in (401, 403), f"the hub still knows the user ({reply.status})"


def test_changed_group_membership_applies_at_the_next_login(
    visit: Any, oidc_provider: OidcProvider
) -> None:
    """mia is let in as a learner; taken out of every group at the provider, she is refused."""
    first = visit("mia-before")
    first.sign_in("mia", oidc_provider.user_password)
    first.page.wait_for_url(re.compile(r"/hub/home"))
    assert hub_user(first)["groups"] == [LEARNERS_GROUP]
    oidc_provider.set_groups("mia", [])
    try:
        after = visit("mia-after")
        with after.step("refused"):
            after.sign_in("mia", oidc_provider.user_password)
            after.page.get_by_text("not in a group that may use this hub").first.wait_for()
        oidc_provider.set_groups("mia", [INSTRUCTORS_GROUP])
        again = visit("mia-instructor")
        again.sign_in("mia", oidc_provider.user_password)
        again.page.wait_for_url(re.compile(r"/hub/home"))
        assert hub_user(again)["groups"] == [INSTRUCTORS_GROUP], "groups follow the provider"
    finally:
        oidc_provider.set_groups("mia", GROUPS["mia"])


# ---------------------------------------------------------------- the check, against the provider


def oidc_yaml(tmp_path: Path, provider: OidcProvider, **oidc: Any) -> Path:
    """A factory-like YAML whose oidc section points at the test provider (plus ``oidc``)."""
    data = yaml.safe_load(FACTORY.read_text(encoding="utf-8"))
    data.update(factory_oidc(provider, "https://hub.factory.example/hub/oauth_callback"))
    data["oidc"].update(oidc)
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


OIDC_RULES = ("oidc-email", "oidc-groups", "oidc-https", "oidc-discovery")


def oidc_findings(path: Path) -> list[check.HubFinding]:
    c, context = check.load(path)
    return [f for f in check.check(c, context=context) if f.rule in OIDC_RULES]


def test_check_verifies_the_factory_settings_against_the_real_provider(
    tmp_path: Path, oidc_provider: OidcProvider
) -> None:
    """The factory's scopes and claims, checked against glewlwyd's discovery document: clean;
    a claim or a scope the provider does not publish is reported, by name."""
    document = oidc_provider.discovery()
    assert {"preferred_username", "groups"} <= set(document["claims_supported"]), document
    assert oidc_findings(oidc_yaml(tmp_path, oidc_provider)) == []
    wrong = oidc_yaml(tmp_path, oidc_provider, groups_claim="roles", scope=["openid", "roles"])
    found = {(f.rule, f.setting): f.message for f in oidc_findings(wrong)}
    assert set(found) == {
        ("oidc-discovery", "c.GenericOAuthenticator.scope"),
        ("oidc-discovery", "c.GenericOAuthenticator.auth_state_groups_key"),
    }, found
    assert "'roles'" in found[("oidc-discovery", "c.GenericOAuthenticator.auth_state_groups_key")]
    typo = oidc_yaml(tmp_path, oidc_provider, issuer=oidc_provider.issuer + "/typo")
    [unreadable] = oidc_findings(typo)
    assert unreadable.rule == "oidc-discovery" and "cannot read" in unreadable.message
