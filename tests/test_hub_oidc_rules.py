"""OIDC settings without a browser: what apply makes of the factory's oidc section, the schema's
and the discovery document's errors, and the check rules oidc-groups, oidc-https, oidc-discovery.

The end-to-end logins against a real provider are in tests/test_hub_oidc.py.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from oauthenticator.generic import GenericOAuthenticator
from traitlets.config import Config

from aifkit.hub import apply, check, discovery, schema
from aifkit.hub.schema import HubConfigError

REPO = Path(__file__).resolve().parents[1]
FACTORY = REPO / "hub-config" / "factory" / "config.yml"
SECRETS = apply.Secrets(proxy_token="t", oidc_client_secret="s3cret")


def factory(**changes: Any) -> schema.HubConfig:
    """The shipped factory profile, with top-level keys or oidc keys (``oidc__x``) changed."""
    data = yaml.safe_load(FACTORY.read_text(encoding="utf-8"))
    for key, value in changes.items():
        if key.startswith("oidc__"):
            data["oidc"][key.removeprefix("oidc__")] = value
        else:
            data[key] = value
    return schema.parse(data, source="config.yml", base=REPO / "hub-config" / "factory")


def applied(config: schema.HubConfig) -> Config:
    c = Config()
    apply.apply(config, c, SECRETS)
    return c


def test_factory_oidc_settings_are_accepted_by_the_authenticator() -> None:
    """Does GenericOAuthenticator take the factory's settings (before: the hub exited at start,
    claim_groups_key without manage_groups), with groups from the provider and no load_groups?"""
    c = applied(factory())
    auth = GenericOAuthenticator(config=c)  # raises what made JupyterHub exit
    assert auth.manage_groups and auth.allowed_groups == {"aifkit-learners", "aifkit-instructors"}
    assert auth.auth_state_groups_key == "oauth_user.groups"
    assert auth.username_claim == "preferred_username"
    assert auth.allow_existing_users is False
    assert "aifkit-learners, aifkit-instructors" in auth.custom_403_message
    assert c.JupyterHub.load_groups == {}  # JupyterHub refuses them with managed groups
    [formgrade] = [r for r in c.JupyterHub.load_roles if r["name"] == "formgrade-aifkit"]
    assert formgrade["groups"] == ["formgrade-aifkit", "aifkit-instructors"]
    assert formgrade["users"] == ["instructor"]


def test_instructor_group_members_get_the_instructor_environment() -> None:
    """Is a user whose provider group is an instructor group spawned as an instructor?"""
    config = factory()
    hook = apply.make_pre_spawn_hook(config)

    class Group:
        def __init__(self, name: str) -> None:
            self.name = name

    class User:
        def __init__(self, name: str, groups: list[str]) -> None:
            self.name, self.groups = name, [Group(g) for g in groups]

    class Spawner:
        def __init__(self, user: User) -> None:
            self.user, self.environment = user, {}

    for name, groups, role in [
        ("ines", ["aifkit-instructors"], "instructor"),
        ("lena", ["aifkit-learners"], "learner"),
    ]:
        spawner = Spawner(User(name, groups))
        hook(spawner)
        assert spawner.environment["JUPYTER_CONFIG_PATH"].endswith(role), (name, spawner)


def test_endpoints_or_issuer_and_instructor_groups_are_checked() -> None:
    """No issuer and a missing endpoint, or an instructor group nobody may log in with: errors."""
    with pytest.raises(HubConfigError, match=r"oidc.*give issuer .* or all of token_url"):
        factory(oidc__token_url="")
    with pytest.raises(HubConfigError, match=r"oidc.instructor_groups: \['teachers'\]"):
        factory(oidc__instructor_groups=["teachers"])
    config = factory(oidc__issuer="https://login.example/realms/x", oidc__token_url="")
    assert config.oidc is not None
    assert config.oidc.discovery_url == (
        "https://login.example/realms/x/.well-known/openid-configuration"
    )
    assert "token_url" not in applied(config).GenericOAuthenticator  # filled at hub start


@pytest.fixture
def serve_json() -> Iterator[Any]:
    """``serve_json(make) -> base URL``: an HTTP server on 127.0.0.1 answering every GET with
    ``make(base URL)`` as JSON."""
    servers: list[http.server.HTTPServer] = []

    def start(make: Callable[[str], Any]) -> str:
        body = b""

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        url = f"http://127.0.0.1:{server.server_address[1]}"
        body = json.dumps(make(url)).encode()
        return url

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_discovery_fills_endpoints_and_refuses_another_issuer(serve_json: Any) -> None:
    """Are missing endpoints taken from the document, and a document of another issuer refused?"""
    url = serve_json(
        lambda base: {
            "issuer": f"{base}/realms/ai",
            "authorization_endpoint": f"{base}/realms/ai/auth",
            "token_endpoint": f"{base}/realms/ai/token",
            "userinfo_endpoint": f"{base}/realms/ai/userinfo",
        }
    )
    issuer = f"{url}/realms/ai"
    config = factory(oidc__issuer=issuer, oidc__authorize_url="", oidc__userdata_url="")
    resolved = discovery.resolve(config)
    assert resolved.oidc is not None and config.oidc is not None
    assert resolved.oidc.authorize_url.endswith("/realms/ai/auth")
    assert resolved.oidc.userdata_url.endswith("/realms/ai/userinfo")
    assert resolved.oidc.token_url == config.oidc.token_url  # given: kept
    other = serve_json(lambda base: {"issuer": "https://elsewhere.example"})
    with pytest.raises(HubConfigError, match=r"names the issuer 'https://elsewhere.example'"):
        discovery.resolve(factory(oidc__issuer=other, oidc__authorize_url=""))
    partial = serve_json(lambda base: ["not", "an", "object"])
    with pytest.raises(HubConfigError, match=r"not a discovery document"):
        discovery.resolve(factory(oidc__issuer=partial, oidc__authorize_url=""))


def rule(c: Config, rule_id: str, **kwargs: Any) -> list[check.HubFinding]:
    return [f for f in check.check(c, **kwargs) if f.rule == rule_id]


def test_oidc_groups_rule() -> None:
    """Allowed groups need manage_groups (or the hub exits) and a group claim (or nobody gets in)."""
    c = Config()
    c.GenericOAuthenticator.allowed_groups = {"aifkit-learners"}
    found = rule(c, "oidc-groups")
    assert [f.setting for f in found] == [
        "c.GenericOAuthenticator.manage_groups",
        "c.GenericOAuthenticator.auth_state_groups_key",
    ]
    assert "exits at start" in found[0].message and "nobody" in found[1].message
    c.GenericOAuthenticator.manage_groups = True
    c.GenericOAuthenticator.claim_groups_key = "groups"  # the deprecated name counts too
    assert rule(c, "oidc-groups") == []
    assert rule(applied(factory()), "oidc-groups") == []


@pytest.mark.parametrize(
    ("url", "profile", "severity"),
    [
        ("http://hub.factory.example/hub/oauth_callback", "factory", "error"),
        ("http://hub.factory.example/hub/oauth_callback", "local", "warning"),
        ("http://127.0.0.1:8000/hub/oauth_callback", "factory", None),
        ("https://hub.factory.example/hub/oauth_callback", "factory", None),
    ],
)
def test_oidc_https_callback(url: str, profile: str, severity: str | None) -> None:
    """Is a plain-HTTP callback off loopback an error on the factory, a warning locally?"""
    c = Config()
    c.GenericOAuthenticator.oauth_callback_url = url
    assert [f.severity for f in rule(c, "oidc-https", profile=profile)] == (
        [severity] if severity else []
    )


def test_oidc_https_endpoints() -> None:
    """Is a plain-HTTP token endpoint (the client secret in clear) an error?"""
    c = Config()
    c.GenericOAuthenticator.token_url = "http://login.factory.example/token"
    c.GenericOAuthenticator.userdata_url = "https://login.factory.example/userinfo"
    [found] = rule(c, "oidc-https", profile="local")
    assert found.severity == "error" and found.setting == "c.GenericOAuthenticator.token_url"


def test_oidc_discovery_needs_an_issuer() -> None:
    """Without our YAML's issuer there is no document to read: the rule says nothing."""
    assert rule(applied(factory()), "oidc-discovery") == []


def test_oidc_discovery_reports_plain_http_endpoints_and_missing_scopes(serve_json: Any) -> None:
    """Endpoints the document publishes over plain HTTP, and scopes it lacks, are reported."""
    url = serve_json(
        lambda base: {
            "issuer": base,
            "authorization_endpoint": "https://login.factory.example/auth",
            "token_endpoint": "http://login.factory.example/token",
            "userinfo_endpoint": "https://login.factory.example/userinfo",
            "scopes_supported": ["openid", "profile"],
        }
    )
    c = applied(factory(oidc__issuer=url))
    context = check.Context(source=FACTORY, base=FACTORY.parent, oidc_issuer=url)
    found = sorted((f.severity, f.setting) for f in rule(c, "oidc-discovery", context=context))
    assert found == [
        ("error", "oidc.issuer in the hub YAML"),
        ("warning", "c.GenericOAuthenticator.scope"),
    ], found
