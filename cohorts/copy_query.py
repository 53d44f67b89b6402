"""The one `query` a cohort may carry here: copy another cohort's members (design §8).

PostHog accepts any HogQLQuery or ActorsQuery on a static cohort. This service has no query
engine, so it accepts only the form PostHog's frontend sends to duplicate a cohort as static
(reference §1.12):

    {"kind": "HogQLQuery", "query": "SELECT person_id FROM cohort_people WHERE cohort_id = N"}

or `static_cohort_people` for a static source. Keywords are case-insensitive, whitespace is
flexible and one trailing semicolon is allowed. Anything else is refused with a 400 naming the
supported form (attr "query"). Whether cohort N exists is the caller's check.
"""

from __future__ import annotations

import re

from cohorts.validate import FilterError

__all__ = ["SUPPORTED_QUERY", "parse_copy_query"]

SUPPORTED_QUERY = "SELECT person_id FROM cohort_people WHERE cohort_id = <id>"

_COPY = re.compile(
    r"\A\s*select\s+person_id\s+from\s+(cohort_people|static_cohort_people)\s+"
    r"where\s+cohort_id\s*=\s*(\d{1,18})\s*;?\s*\Z",
    re.IGNORECASE | re.ASCII,
)
_KINDS = ("ActorsQuery", "HogQLQuery")


def parse_copy_query(query: object) -> tuple[int, bool]:
    """`(cohort_id, reads_static_table)` of a copy-a-cohort query; FilterError otherwise.

    Callers treat a falsy `query` (null, `{}`) as no query before calling, as PostHog does.
    """
    if not isinstance(query, dict):
        raise FilterError("Query must be a dictionary.", attr="query")
    kind = query.get("kind")
    if kind not in _KINDS:
        raise FilterError(f"Query must be an ActorsQuery or HogQLQuery. Got: {kind}", attr="query")
    unsupported = (
        f"Only a query copying another cohort is supported: "
        f'{{"kind": "HogQLQuery", "query": "{SUPPORTED_QUERY}"}} (or static_cohort_people for a static cohort).'
    )
    extra = sorted(key for key, value in query.items() if key not in ("kind", "query") and value not in (None, {}, []))
    if kind != "HogQLQuery" or extra:
        raise FilterError(unsupported, attr="query")
    text = query.get("query")
    match = _COPY.match(text) if isinstance(text, str) else None
    if match is None:
        raise FilterError(unsupported, attr="query")
    return int(match.group(2)), match.group(1).lower() == "static_cohort_people"
