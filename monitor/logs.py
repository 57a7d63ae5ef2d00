"""Logging setup: plain text or one JSON object per line."""

from __future__ import annotations

import json
import logging
import sys
import time


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library chatter stays at WARNING unless vecmon itself runs at DEBUG.
    quiet = logging.DEBUG if level.lower() == "debug" else logging.WARNING
    logging.getLogger("apscheduler").setLevel(quiet)
    # urllib3 logs request URLs at DEBUG, and some gateways take API keys in the query string.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    # The pool logs every reconnect attempt; vecmon reports each failed run itself.
    logging.getLogger("psycopg.pool").setLevel(logging.DEBUG if level.lower() == "debug" else logging.ERROR)
