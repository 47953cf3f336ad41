"""Allows ``python -m ordergate``."""

from ordergate.cli import main

main()
