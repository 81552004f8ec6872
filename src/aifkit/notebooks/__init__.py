"""The notebook toolchain: read, lint, strip, hash, execute and validate course notebooks."""

import sys

# jsonschema (imported by nbformat) imports rfc3987_syntax when it is installed, which compiles
# a grammar for ~1.8 s on every start-up, only to check the 'iri' string format that no notebook
# schema uses. The toolchain's processes skip it; jsonschema then leaves that format unchecked.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
