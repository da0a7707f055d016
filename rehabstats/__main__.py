"""``python -m rehabstats``: the command-line interface."""

from rehabstats.cli import main

main()
