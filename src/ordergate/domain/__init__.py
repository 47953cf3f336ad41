"""The pure heart of ordergate: orders, the registry of subscribers, the book and ``decide()``.

Nothing in this package does I/O, reads a clock or knows about HTTP or SQL; every entrypoint and
every store shares the one decision function defined here.
"""
