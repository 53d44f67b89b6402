"""Scenario 5's write burst: client threads that record exactly what the api acknowledged.

Each `Writer` owns its cohorts (no other thread touches them) and sends one request at a time:
creates (dynamic and static), renames, filter changes, static adds and removes, soft deletes.
A 2xx answer is *acknowledged*: its effect goes into the writer's model. Any other outcome (the
process was killed mid-request, a 5xx) is the writer's single *pending* request, which may or
may not have been applied; the writer stops there. So after a restart every owned cohort must be
in its acknowledged state, except the one the pending request touched, which may also be in the
state after it (`Writer.check`).

Nothing here starts or kills a process.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.reliability.api_stack import ApiHttp, stable

__all__ = ["ANY", "Model", "Writer", "stable"]

PERSON_FILTERS = {
    "properties": {
        "type": "AND",
        "values": [{"type": "person", "key": "email", "operator": "icontains", "value": "@reliable"}],
    }
}


def _filters(n: int) -> dict[str, Any]:
    leaf = {"type": "person", "key": "email", "operator": "icontains", "value": f"@reliable{n % 7}"}
    return {"properties": {"type": "AND", "values": [leaf]}}


@dataclass
class Model:
    """One cohort as acknowledged: its row, static members and activity kinds."""

    row: dict[str, Any]
    members: set[str] = field(default_factory=set)
    activity: Counter[str] = field(default_factory=Counter)

    def copy(self) -> Model:
        return Model(dict(self.row), set(self.members), Counter(self.activity))


@dataclass
class Pending:
    """The one request whose outcome is unknown: what it would make of its cohort."""

    description: str
    cohort_id: int | None  # None: a create
    name: str | None = None  # a create's name
    after: Model | None = None  # the cohort's state had it been applied


class Writer(threading.Thread):
    """Sends writes for its own cohorts until stopped or until a request gets no 2xx answer."""

    def __init__(self, name: str, client: ApiHttp, persons: list[str], rng: random.Random) -> None:
        super().__init__(name=f"writer-{name}", daemon=True)
        self.label = name
        self.client = client
        self.persons = persons
        self.rng = rng
        self.cohorts: dict[int, Model] = {}
        self.acknowledged = 0
        self.pending: Pending | None = None
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self._serial = 0

    # --- one operation each -------------------------------------------------------------------
    def _send(self, method: str, path: str, body: dict[str, Any], pending: Pending) -> httpx.Response | None:
        """The response when acknowledged; None (and `pending` recorded) otherwise."""
        try:
            timed = self.client.call(method, path, json=body)
        except httpx.TransportError:
            self.pending = pending
            return None
        if timed.status >= 300:
            if timed.status < 500:
                raise AssertionError(f"{method} {path}: {timed.status} {timed.response.text}")
            self.pending = pending
            return None
        self.acknowledged += 1
        return timed.response

    def _create(self, static: bool) -> bool:
        self._serial += 1
        name = f"{self.label}-{self._serial}"
        body: dict[str, Any] = (
            {"name": name, "is_static": True} if static else {"name": name, "filters": PERSON_FILTERS}
        )
        response = self._send("POST", "cohorts/", body, Pending(f"create {name}", None, name=name))
        if response is None:
            return False
        row = response.json()
        self.cohorts[row["id"]] = Model(stable(row), activity=Counter({"created": 1}))
        return True

    def _patch(self, cohort_id: int, body: dict[str, Any], kind: str) -> bool:
        model = self.cohorts[cohort_id]
        after = model.copy()
        after.row.update(body)
        after.row["pending_version"] = ANY  # the api's version rule is not this test's subject
        if "filters" in body:
            after.row["filters"] = ANY  # stored normalised
        after.activity[kind] += 1
        pending = Pending(f"{kind} {cohort_id} {sorted(body)}", cohort_id, after=after)
        response = self._send("PATCH", f"cohorts/{cohort_id}/", body, pending)
        if response is None:
            return False
        model.row = stable(response.json())
        model.activity[kind] += 1
        return True

    def _static(self, cohort_id: int, add: bool) -> bool:
        model = self.cohorts[cohort_id]
        after = model.copy()
        if add:
            people = self.rng.sample(self.persons, self.rng.randint(1, 4))
            path, body, kind = "add_persons_to_static_cohort", {"person_ids": people}, "persons_added_manually"
            after.members |= set(people)
        else:
            person = self.rng.choice(sorted(model.members) or self.persons)
            path, body, kind = "remove_person_from_static_cohort", {"person_id": person}, "person_removed_manually"
            after.members.discard(person)
        after.activity[kind] += 1
        pending = Pending(f"{kind} {cohort_id}", cohort_id, after=after)
        if self._send("PATCH", f"cohorts/{cohort_id}/{path}/", body, pending) is None:
            return False
        model.members, model.activity = after.members, after.activity
        return True

    def step(self) -> bool:
        live = [i for i, m in self.cohorts.items() if not m.row["deleted"]]
        statics = [i for i in live if self.cohorts[i].row["is_static"]]
        dynamics = [i for i in live if not self.cohorts[i].row["is_static"]]
        roll = self.rng.random()
        if len(live) < 3 or roll < 0.15:
            return self._create(static=self.rng.random() < 0.4)
        if statics and roll < 0.55:
            return self._static(self.rng.choice(statics), add=self.rng.random() < 0.7)
        target = self.rng.choice(dynamics or live)
        if roll < 0.70:
            self._serial += 1
            return self._patch(target, {"name": f"{self.label}-{self._serial}"}, "updated")
        if roll < 0.90 and target in dynamics:
            self._serial += 1
            return self._patch(target, {"filters": _filters(self._serial)}, "updated")
        return self._patch(target, {"deleted": True}, "deleted")

    def run(self) -> None:
        try:
            while not self.stop.is_set() and self.step():
                pass
        except BaseException as exc:
            self.error = exc

    # --- after a restart --------------------------------------------------------------------------
    def check(self, rows: dict[int, dict[str, Any]], members: dict[int, set[str]], activity: dict[int, Counter]) -> int:
        """Assert every owned cohort is in its acknowledged state (or, for the pending request's
        cohort, the state after it); returns how many pending requests were found applied."""
        applied = 0
        for cohort_id, model in self.cohorts.items():
            seen = Model(stable(rows[cohort_id]), members[cohort_id], activity[cohort_id])
            states = [model]
            if self.pending is not None and self.pending.cohort_id == cohort_id:
                states.append(self.pending.after)
            matches = [n for n, state in enumerate(states) if _same(state, seen)]
            assert matches, (
                f"cohort {cohort_id} of {self.label} lost acknowledged writes:\n"
                f" acknowledged {model}\n seen {seen}\n pending {self.pending}"
            )
            applied += matches[0] == 1
        return applied


#: Matches any value: a field whose value after a pending request this test does not predict.
ANY: Any = object()


def _same(expected: Model, seen: Model) -> bool:
    for name in ("name", "deleted", "is_static", "filters", "pending_version"):
        want = expected.row.get(name)
        if want is not ANY and seen.row.get(name) != want:
            return False
    return seen.members == expected.members and seen.activity == expected.activity
