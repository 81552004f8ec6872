"""The notebook toolchain: read, lint, strip, hash, execute and validate course notebooks."""
