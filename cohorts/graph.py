"""The reference graph between cohorts of one project: loops, unknown ids, evaluation order.

An edge A -> B means a cohort leaf in A's definition refers to B. Only a dynamic cohort's
parsed `root` defines edges for evaluation: a static cohort's members are a materialised list,
so it depends on nothing (reference §2.5). The delete guard also reads the stored filters of
static cohorts, as PostHog counts every cohort whose definition names the deleted one.

Every walk here is iterative and visits each cohort once, so a cycle in stored data (which the
api prevents, reference §2.13) can never make it run forever.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping

from cohorts.model import CohortDefinition, Group, referenced_cohort_ids

__all__ = ["creates_loop", "criteria_users", "dependents", "evaluation_order", "unknown_references"]


def creates_loop(cohort_id: int, root: Group | None, lookup: Callable[[int], Group | None]) -> bool:
    """Whether saving `root` as cohort `cohort_id` closes a loop (PostHog's `will_create_loops`).

    A depth-first walk from the new definition; reaching a cohort still on the walk's path is
    a back edge. A self reference is a loop. `lookup` gives the root of any other cohort
    (None for static, unknown or criteria-less ones: they have no edges).
    """

    def children(node: int) -> list[int]:
        node_root = root if node == cohort_id else lookup(node)
        return sorted(referenced_cohort_ids(node_root))

    on_path: set[int] = {cohort_id}
    done: set[int] = set()
    stack: list[tuple[int, list[int]]] = [(cohort_id, children(cohort_id))]
    while stack:
        node, pending = stack[-1]
        if not pending:
            stack.pop()
            on_path.discard(node)
            done.add(node)
            continue
        child = pending.pop()
        if child in on_path:
            return True
        if child not in done:
            on_path.add(child)
            stack.append((child, children(child)))
    return False


def unknown_references(root: Group | None, known_ids: set[int]) -> set[int]:
    """Referenced ids that are not cohorts of the project ("Invalid Cohort ID in filter")."""
    return referenced_cohort_ids(root) - known_ids


def _edges(definitions: Mapping[int, CohortDefinition]) -> dict[int, set[int]]:
    """Dependencies inside `definitions` only: references to absent cohorts are ignored."""
    return {
        cohort_id: {ref for ref in referenced_cohort_ids(d.root) if ref in definitions and ref != cohort_id}
        for cohort_id, d in definitions.items()
    }


def evaluation_order(definitions: Mapping[int, CohortDefinition]) -> list[int]:
    """Every id of `definitions`, referenced cohorts before the cohorts that use them.

    Kahn's algorithm taking the smallest ready id first, so the order is deterministic. Should a
    cycle exist, the smallest id still waiting is released to break it.
    """
    needs = _edges(definitions)
    users: dict[int, set[int]] = {cohort_id: set() for cohort_id in definitions}
    for cohort_id, refs in needs.items():
        for ref in refs:
            users[ref].add(cohort_id)
    waiting = {cohort_id: len(refs) for cohort_id, refs in needs.items()}
    ready = [cohort_id for cohort_id, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while waiting:
        if not ready:
            heapq.heappush(ready, min(waiting))
        cohort_id = heapq.heappop(ready)
        if cohort_id not in waiting:
            continue
        del waiting[cohort_id]
        order.append(cohort_id)
        for user in users[cohort_id]:
            if user in waiting:
                waiting[user] -= 1
                if waiting[user] == 0:
                    heapq.heappush(ready, user)
    return order


def dependents(cohort_id: int, definitions: Mapping[int, CohortDefinition]) -> set[int]:
    """Cohorts that reference `cohort_id` directly or through others (never `cohort_id` itself):
    the ones to recalculate after it changes (reference §1.4 step 5)."""
    users: dict[int, set[int]] = {}
    for user, refs in _edges(definitions).items():
        for ref in refs:
            users.setdefault(ref, set()).add(user)
    found: set[int] = set()
    stack = [cohort_id]
    while stack:
        for user in users.get(stack.pop(), ()):
            if user not in found and user != cohort_id:
                found.add(user)
                stack.append(user)
    return found


def criteria_users(cohort_id: int, definitions: Mapping[int, CohortDefinition]) -> list[int]:
    """Non-deleted cohorts other than `cohort_id` whose definition names it, ascending: the
    delete guard (reference §1.5, "used as criteria in {n} other cohort(s)")."""
    return sorted(
        other
        for other, d in definitions.items()
        if other != cohort_id and not d.deleted and cohort_id in _named_cohorts(d)
    )


def _named_cohorts(definition: CohortDefinition) -> set[int]:
    if definition.root is not None:
        return referenced_cohort_ids(definition.root)
    return _raw_cohort_ids(definition.filters)


def _raw_cohort_ids(filters: object) -> set[int]:
    """Cohort ids in stored (normalised) filters, for cohorts without a parsed root."""
    found: set[int] = set()
    stack = [filters.get("properties")] if isinstance(filters, dict) else []
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        if node.get("type") == "cohort" and isinstance(node.get("value"), int):
            found.add(node["value"])
        elif isinstance(node.get("values"), list):
            stack.extend(node["values"])
    return found
