"""Fuzzing every operation of the service's own OpenAPI document (/api/v1/openapi.json) with
schemathesis, through the WSGI app on the real database, with a valid bearer token:
no 5xx, and every response matches its documented schema and media type.

Each operation is driven with schemathesis' hypothesis strategies (positive and negative
data) directly: the lazy `from_fixture` pytest integration of schemathesis 4.32 does not run
under pytest 9 ('Function' object has no attribute '_nodeid').

In `make test` a few examples per operation, mode and role; `make fuzz`
(PIECES_LONG_TESTS=1) runs PIECES_FUZZ_EXAMPLES (default 300) each."""
from __future__ import annotations

import os
import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (content_type_conformance, not_a_server_error,
                                 response_schema_conformance)

from helpers import make_token

from .conftest import long_mode

EXAMPLES = int(os.environ.get("PIECES_FUZZ_EXAMPLES", "300")) if long_mode() else 5
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
# One tenant for the run, so fuzzed writes land in this run's database under one company;
# SystemAdmin may also name any other tenant, CompanyAdmin may not.
FUZZ_TENANT = uuid.uuid4()
CALLS: dict[str, int] = {}


@pytest.fixture(scope="module")
def api_schema(app):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    schema.config.generation.update(max_examples=EXAMPLES, deterministic=not long_mode())
    return schema


def operations(api_schema):
    found = []
    for result in api_schema.get_all_operations():
        found.append(result.ok())
    return found


def _fuzz_operation(operation, mode: GenerationMode, role: str) -> None:
    headers = {"Authorization": "Bearer " + make_token(FUZZ_TENANT, role, sub="fuzzer")}

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=not long_mode(),
              suppress_health_check=list(HealthCheck), database=None)
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        CALLS[role] = CALLS.get(role, 0) + 1
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()


@pytest.mark.parametrize("role", ["SystemAdmin", "CompanyAdmin"])
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=str)
def test_no_5xx_and_responses_match_the_document(api_schema, role, mode):
    ops = operations(api_schema)
    assert len(ops) >= 14, [op.label for op in ops]  # list, get, 4×delete/restore, 4×sync, audit
    failures = []
    for operation in ops:
        try:
            _fuzz_operation(operation, mode, role)
        except Exception as exc:  # collect all operations' failures, then report together
            failures.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)


def test_fuzzing_really_called_every_operation(api_schema):
    """Guard against a silently empty run (the counters of the runs above)."""
    if not CALLS:
        pytest.skip("run together with the fuzz tests above")
    assert CALLS.get("SystemAdmin", 0) >= len(operations(api_schema)), CALLS
