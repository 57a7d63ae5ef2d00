"""Secrets out of text: every message a collector or runner logs or stores goes through :func:`redact`."""

from __future__ import annotations


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text
