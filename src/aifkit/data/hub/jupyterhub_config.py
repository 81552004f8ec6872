"""JupyterHub's configuration file for every aifkit hub: the settings come from a YAML file.

AIFKIT_HUB_CONFIG names that file (a site's config.yml; see hub-config/ in the repository).
`aifkit hub run --config FILE` sets it and runs `jupyterhub -f <this file>`; a site that runs
JupyterHub itself does the same (`aifkit hub paths` prints where this file is installed).
Nothing here is edited per site: `aifkit hub check FILE` lints the result.
"""

import os
from pathlib import Path

from aifkit.hub import apply, discovery, schema, secrets

if not os.environ.get("AIFKIT_HUB_CONFIG"):
    raise SystemExit(
        "AIFKIT_HUB_CONFIG is not set: point it at the hub's config.yml, or start the hub with "
        "`aifkit hub run --config config.yml`"
    )
config = schema.load(Path(os.environ["AIFKIT_HUB_CONFIG"]))
if os.environ.get("AIFKIT_HUB_CHECK") != "1":  # the check reads the provider's metadata itself
    config = discovery.resolve(config)  # OIDC endpoints from the issuer's discovery document
apply.apply(config, get_config(), secrets.load(config))  # noqa: F821 - given by JupyterHub
