"""``python -m aifkit``: the aifkit command, where its console script is not installed."""

from aifkit.cli import main

main()
