"""``python -m dashboards.check generated/grafana/*.json``: lint dashboard files (exit 1 on findings),
with the exclusions the generated dashboards declare (:func:`dashboards.render.lint_exclusions`)."""

from __future__ import annotations

import json
import sys

from dashboards.lint import lint
from dashboards.render import lint_exclusions


def main(argv: list[str] | None = None) -> int:
    paths = argv if argv is not None else sys.argv[1:]
    exclusions = lint_exclusions()
    total = 0
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            found = lint(json.load(handle), exclusions)
        total += len(found)
        for finding in found:
            print(f"{path}: {finding}")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
