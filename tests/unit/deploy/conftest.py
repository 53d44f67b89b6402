"""The deploy-artifact tests run offline.

These files cannot run here (no Docker engine, no cluster), so the tests lint and schema-check
them and compare them with the code they deploy. Every schema comes from an installed package;
the autouse fixture refuses sockets so a validator cannot quietly fetch one.
"""

from __future__ import annotations

import socket

import pytest


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Validation must work without a network: any connect attempt fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"deploy tests must not use the network (connect {args[1:]!r})")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
