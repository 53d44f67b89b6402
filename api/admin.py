"""Administration the CLI calls: create projects and personal API keys (design §9).

Each call opens the auth database read-write for the duration of one write and closes it, then
replaces the stamp file, so a running api re-opens its read-only handle on the next lookup and
the new key works as soon as the call returns. A project id is also the PostHog `team_id` its
topics carry (design §8).

Never: called from inside the api process while serving requests.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from typing import Any

import orjson

from api.auth_db import hash_key, open_for_write, touch_stamp
from api.scopes import validate_scopes
from cohorts.settings import Settings
from cohorts.timestamps import format_iso

__all__ = ["AdminError", "create_key", "create_project"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


class AdminError(ValueError):
    """A CLI request that cannot be carried out (unknown project, bad scope, bad email)."""


def _now_us() -> int:
    return time.time_ns() // 1000


def _next_id(db: Any, counter: bytes) -> int:
    raw = db.get(counter)
    value = 1 if raw is None else int(orjson.loads(raw)) + 1
    db.put(counter, orjson.dumps(value))
    return value


def create_project(settings: Settings, name: str) -> dict[str, Any]:
    """Create a project; returns `{"id", "name", "created_at"}`."""
    name = (name or "").strip()
    if not name:
        raise AdminError("project name must not be empty")
    db = open_for_write(settings.data_dir)
    try:
        project_id = _next_id(db, b"meta:next_project_id")
        project = {"id": project_id, "name": name[:400], "created_at": format_iso(_now_us())}
        db.put(f"project:{project_id}".encode(), orjson.dumps(project))
        db.flush()
    finally:
        db.close()
        del db
    touch_stamp(settings.data_dir)
    return project


def create_key(
    settings: Settings,
    project_id: int | None,
    user_email: str,
    scopes: list[str],
    *,
    label: str = "cli",
) -> dict[str, Any]:
    """Create a personal API key for `user_email` (the user is created on first use).

    `project_id` restricts the key to that project (PostHog `scoped_teams`); None = every
    project the user belongs to. Empty `scopes` = a legacy key allowed everything.
    Returns `{"key": "phx_...", "id", "user": {...}, "scopes", "projects"}`.
    """
    email = (user_email or "").strip()
    if not _EMAIL.match(email):
        raise AdminError(f"not an email address: {user_email!r}")
    try:
        scopes = validate_scopes(scopes)
    except ValueError as exc:
        raise AdminError(str(exc)) from exc
    db = open_for_write(settings.data_dir)
    try:
        if project_id is not None and db.get(f"project:{project_id}".encode()) is None:
            raise AdminError(f"no project with id {project_id}")
        user = _ensure_user(db, email, project_id)
        raw_key = "phx_" + secrets.token_urlsafe(32)
        key_id = str(uuid.uuid4())
        record = {
            "id": key_id,
            "label": label,
            "user_id": user["id"],
            "scopes": scopes,
            "scoped_teams": None if project_id is None else [project_id],
            "created_at": format_iso(_now_us()),
        }
        db.put(b"key:" + hash_key(raw_key).encode(), orjson.dumps(record))
        db.flush()
    finally:
        db.close()
        del db
    touch_stamp(settings.data_dir)
    return {
        "key": raw_key,
        "id": key_id,
        "user": {k: user[k] for k in ("id", "uuid", "email", "first_name")},
        "scopes": scopes,
        "projects": record["scoped_teams"],
    }


def _ensure_user(db: Any, email: str, project_id: int | None) -> dict[str, Any]:
    index_key = f"user_email:{email.lower()}".encode()
    raw_id = db.get(index_key)
    if raw_id is None:
        user_id = _next_id(db, b"meta:next_user_id")
        user = {
            "id": user_id,
            "uuid": str(uuid.uuid4()),
            "distinct_id": secrets.token_urlsafe(24),
            "first_name": email.split("@", 1)[0],
            "last_name": "",
            "email": email,
            "is_email_verified": False,
            "current_project_id": project_id,
            "projects": [],
        }
        db.put(index_key, orjson.dumps(user_id))
    else:
        user = orjson.loads(db.get(f"user:{int(orjson.loads(raw_id))}".encode()))
    if project_id is not None and project_id not in user["projects"]:
        user["projects"].append(project_id)
    if user.get("current_project_id") is None:
        user["current_project_id"] = project_id
    db.put(f"user:{user['id']}".encode(), orjson.dumps(user))
    return user
