"""An OpenID Connect provider's metadata: its discovery document, read at hub start.

``<issuer>/.well-known/openid-configuration`` names the provider's endpoints and what it
supports (scopes, claims). ``resolve`` fills the hub's unset endpoints from it, so a site gives
only its issuer; ``aifkit hub check`` reads the same document to verify scopes and claims.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from aifkit.hub.schema import HubConfig, HubConfigError, Oidc

TIMEOUT_S = 10.0
ENDPOINTS = {  # our setting -> the discovery document's key
    "authorize_url": "authorization_endpoint",
    "token_url": "token_endpoint",
    "userdata_url": "userinfo_endpoint",
}


def fetch(oidc: Oidc, timeout_s: float = TIMEOUT_S) -> dict[str, Any]:
    """The provider's discovery document; a clear error when it cannot be read or is wrong."""
    url = oidc.discovery_url
    if not url:
        raise HubConfigError("oidc.issuer is not set: there is no discovery document to read")
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as reply:
            document = json.loads(reply.read().decode("utf-8"))
    except (urllib.error.URLError, OSError) as error:
        raise HubConfigError(f"oidc.issuer: cannot read {url}: {error}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HubConfigError(f"oidc.issuer: {url} is not a JSON document: {error}") from None
    if not isinstance(document, dict):
        raise HubConfigError(f"oidc.issuer: {url} is not a discovery document (no JSON object)")
    # OpenID Connect Discovery 1.0, 4.3: the issuer in the document must be the one asked for
    if str(document.get("issuer", "")).rstrip("/") != oidc.issuer.rstrip("/"):
        raise HubConfigError(
            f"oidc.issuer: {url} names the issuer {document.get('issuer')!r}, not "
            f"{oidc.issuer!r}: set issuer to exactly what the provider publishes"
        )
    return document


def with_endpoints(oidc: Oidc, document: dict[str, Any]) -> Oidc:
    """``oidc`` with every endpoint it leaves empty taken from the discovery document."""
    filled: dict[str, str] = {}
    for setting, key in ENDPOINTS.items():
        if getattr(oidc, setting):
            continue
        value = document.get(key)
        if not isinstance(value, str) or not value:
            raise HubConfigError(
                f"oidc.{setting}: the discovery document of {oidc.issuer} has no {key}; "
                f"set {setting} in the configuration"
            )
        filled[setting] = value
    return oidc.model_copy(update=filled)


def resolve(config: HubConfig) -> HubConfig:
    """The hub configuration with the OIDC endpoints from the provider (when it has an issuer)."""
    oidc = config.oidc
    if config.auth != "oidc" or oidc is None or not oidc.issuer:
        return config
    if all(getattr(oidc, setting) for setting in ENDPOINTS):
        return config
    return config.model_copy(update={"oidc": with_endpoints(oidc, fetch(oidc))})
