"""The deprecated `groups` format of a cohort definition (reference §2.8).

Owns two things: checking `groups` on save (PostHog's `Group` constructor rules and texts, stored
normalised to the full key set) and converting stored groups to `{"properties": ...}` at read
time, as PostHog's `Cohort.properties` does when `filters` is empty.

The conversion is faithful, not filtered: an `action_id` group becomes a behavioural leaf with
`event_type: "actions"`, which `cohorts.validate.parse_filters` refuses because the engine cannot
compute it (design §8). Never mutates its input.
"""

from __future__ import annotations

from typing import Any

from cohorts.validate import FilterError

__all__ = ["GROUP_KEYS", "groups_to_filters", "validate_groups"]

#: Keys of a stored group, in the order PostHog's `Group.to_dict` writes them.
GROUP_KEYS: tuple[str, ...] = (
    "properties",
    "action_id",
    "event_id",
    "label",
    "days",
    "count",
    "count_operator",
    "start_date",
    "end_date",
)


def validate_groups(raw: object) -> list[dict[str, Any]]:
    """Check `groups` and return each group with every key of GROUP_KEYS (missing ones null).

    Raises FilterError (attr "groups") with PostHog's texts.
    """
    if not isinstance(raw, list):
        raise FilterError("Groups must be a list of cohort group definitions.", attr="groups")
    normalised: list[dict[str, Any]] = []
    for index, group in enumerate(raw):
        if not isinstance(group, dict):
            raise FilterError(f"Cohort group at index {index} must be an object.", attr="groups")
        unknown = [key for key in group if key not in GROUP_KEYS]
        if unknown:
            # PostHog builds `Group(**group)`; the TypeError names the first unexpected key.
            raise FilterError(
                f"Invalid cohort group at index {index}: "
                f"Group.__init__() got an unexpected keyword argument '{unknown[0]}'",
                attr="groups",
            )
        if not group.get("properties") and not group.get("action_id") and not group.get("event_id"):
            raise FilterError(
                f"Invalid cohort group at index {index}: Cohort group needs properties or action_id or event_id",
                attr="groups",
            )
        normalised.append({key: group.get(key) for key in GROUP_KEYS})
    return normalised


def groups_to_filters(groups: list[dict[str, Any]]) -> dict[str, Any]:
    """Read-time conversion of stored groups to `{"properties": <group>}` (reference §2.8).

    Groups are ORed. A properties group becomes an AND group of its properties, re-typing those
    with no type or type "event" as "person"; an old-style `{key: value}` dict becomes person
    leaves. Person leaves without an operator get "exact", PostHog's default, so the converted form
    validates. An `action_id`/`event_id` group becomes one behavioural leaf. One invalid group
    makes the whole definition empty, which reads as `{"properties": {}}`.
    """
    converted: list[dict[str, Any]] = []
    for group in groups:
        if not isinstance(group, dict):
            return {"properties": {}}
        properties = group.get("properties")
        if properties:
            node = _properties_group(properties)
            if node is None:
                return {"properties": {}}
            if node.get("values"):
                converted.append(node)
        elif group.get("action_id") or group.get("event_id"):
            converted.append({"type": "AND", "values": [_behavioral_leaf(group)]})
        else:
            return {"properties": {}}
    if not converted:
        return {"properties": {}}
    return {"properties": {"type": "OR", "values": converted}}


def _properties_group(properties: object) -> dict[str, Any] | None:
    if isinstance(properties, list):
        values = []
        for prop in properties:
            if not isinstance(prop, dict):
                return None
            prop = dict(prop)
            if prop.get("type", "event") == "event":
                prop["type"] = "person"
            if prop["type"] == "person" and prop.get("operator") is None:
                prop["operator"] = "exact"
            values.append(prop)
        return {"type": "AND", "values": values}
    if isinstance(properties, dict):
        if "type" in properties or "values" in properties:
            return dict(properties)
        # Old-old properties `{"key": "value"}`: person properties, compared exactly.
        return {
            "type": "AND",
            "values": [
                {"type": "person", "key": key, "value": value, "operator": "exact"} for key, value in properties.items()
            ],
        }
    return None


def _behavioral_leaf(group: dict[str, Any]) -> dict[str, Any]:
    is_action = bool(group.get("action_id"))
    try:
        count = max(0, int(group.get("count") or 0))
    except (TypeError, ValueError):
        count = 0
    leaf: dict[str, Any] = {
        "type": "behavioral",
        "key": group["action_id"] if is_action else group["event_id"],
        "value": "performed_event_multiple" if count else "performed_event",
        "event_type": "actions" if is_action else "events",
        "time_interval": "day",
        "time_value": group.get("days") or 365,
    }
    if group.get("count_operator") is not None:
        leaf["operator"] = group["count_operator"]
    if count:
        leaf["operator_value"] = count
    return leaf
