"""Property-based run against the api's own `/api/schema/` (schemathesis): no 5xx, and every
response conforms to the documented status codes, content types and schemas.

Scenario: one app on a temporary data dir with an in-memory publisher; a project, a key and a
few cohorts (dynamic, static with a member) exist; every generated case is sent as that key to
that project, and half of the cohort ids are mapped onto existing cohorts so that the success
paths are exercised too. Bounded by `MAX_EXAMPLES` per operation (the whole file runs in well
under two minutes).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.admin import create_key, create_project  # noqa: E402
from api.main import create_app  # noqa: E402
from api.publisher import MemoryPublisher  # noqa: E402
from api.schemas.cohort import CohortWrite  # noqa: E402
from api.services.cohorts import WriteRequest  # noqa: E402
from api.views.persons import apply_person  # noqa: E402
from cohorts.settings import Settings  # noqa: E402

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
#: Generated cases per operation and mode; ~17 operations x 2 modes stay well under a minute.
MAX_EXAMPLES = {"positive": 20, "negative": 15}


class Target:
    project_id: int = 0
    key: str = ""
    cohort_ids: tuple[int, ...] = ()


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from schemathesis.python import asgi

    data_dir: Path = tmp_path_factory.mktemp("fuzz")
    config = Settings(data_dir=data_dir, partitions=2)
    project = create_project(config, "Fuzz")
    Target.project_id = project["id"]
    Target.key = create_key(config, project["id"], "fuzz@acme.com", ["*"])["key"]
    app = create_app(config, publisher=MemoryPublisher(), consume=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        loaded = schemathesis.openapi.from_asgi("/api/schema/", app)
    ctx = app.state.ctx
    user = ctx.auth.user(1)
    batch = ctx.store.batch()
    apply_person(batch, b'{"id": "00000000-0000-0000-0000-000000000001", "team_id": %d, "version": 1}' % project["id"])
    batch.commit()
    dynamic = ctx.cohorts.create(project["id"], user, _write(name="dyn", filters=_person_filters()))
    static = ctx.cohorts.create(
        project["id"],
        user,
        _write(name="static", is_static=True, _create_static_person_ids=["00000000-0000-0000-0000-000000000001"]),
    )
    Target.cohort_ids = (dynamic["id"], static["id"])
    yield loaded
    asgi.shutdown_lifespans()


def _person_filters() -> dict:
    leaf = {"type": "person", "key": "email", "operator": "icontains", "value": "@"}
    return {"properties": {"type": "AND", "values": [leaf]}}


def _write(**data) -> WriteRequest:
    body = CohortWrite.model_validate(data)
    return WriteRequest(body=body, fields=frozenset(body.model_fields_set))


def _send(case) -> None:
    if "project_id" in (case.path_parameters or {}):
        case.path_parameters["project_id"] = str(Target.project_id)
    cohort_id = (case.path_parameters or {}).get("cohort_id")
    if isinstance(cohort_id, int) and cohort_id % 2 == 0:
        case.path_parameters["cohort_id"] = Target.cohort_ids[(cohort_id // 2) % len(Target.cohort_ids)]
    case.call_and_validate(headers={"Authorization": f"Bearer {Target.key}"}, checks=CHECKS)


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_api_conforms_to_its_own_schema(api_schema, mode: str) -> None:
    """Every operation, `MAX_EXAMPLES` generated cases each (deterministic): valid inputs, then
    inputs that violate the schema (which must be refused with a documented 4xx, never a 5xx)."""
    from schemathesis import GenerationMode

    generation_mode = GenerationMode(mode)
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 14
    for operation in operations:
        strategy = operation.as_strategy(generation_mode=generation_mode)

        @given(case=strategy)
        @settings(
            max_examples=MAX_EXAMPLES[mode],
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case) -> None:
            _send(case)

        try:
            run()
        except Unsatisfiable:
            # Nothing to negate (e.g. `/_health` has no parameters).
            assert mode == "negative", operation.label
