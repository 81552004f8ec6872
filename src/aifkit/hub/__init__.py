"""JupyterHub for the course: configuration as data, a pure apply, lint, and the local hub."""
