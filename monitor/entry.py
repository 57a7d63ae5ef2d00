"""The ``vecmon`` entry point: answers ``--version`` before anything heavy is imported.

This module and :mod:`collectors.registry` are the two places where vecmon imports lazily, and
only for start-up cost: the command machinery (pydantic, psycopg, prometheus_client, ...) costs
about half a second to import, which ``vecmon --version`` should not pay. No import here is
deferred to dodge an import cycle.
"""

from __future__ import annotations

import sys

from monitor import __version__


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--version"]:
        print(f"vecmon {__version__}")
        return 0
    from monitor.cli import main as run_command  # the whole command line, with its dependencies

    return run_command(args)
