"""The OpenAPI document is the contract: schemathesis (an outside tool) generates requests
from the document a running `receiver serve` serves, valid and not, for every operation, and
fails on a server error, a status the document does not list, an answer that is not the
content type or the schema it says — with reads open (the default) and protected, with the
token and without."""

from __future__ import annotations

import contextlib
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from receiver import openapi, server
from tests import processes
from tests.conftest import AUTH, EXAMPLE_CONFIG, TOKEN

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = settings(
    max_examples=12,  # per operation: bounded for CI; raise it by hand to search longer
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@contextlib.contextmanager
def serving(config_dir: Path, tmp: Path, **env: str) -> Iterator[str]:
    port = processes.free_port()
    env = {
        "RECEIVER_AUTH_TOKEN": TOKEN,
        "RECEIVER_STORE": str(tmp / "journal.db"),
        "RECEIVER_DRY_RUN": "true",  # the webhooks it generates start remediations
        "RECEIVER_WATCH_CONFIG": "0s",
        "RECEIVER_STORE_SYNCHRONOUS": "normal",  # the contract, not durability: no fsync each
        **env,
    }
    with processes.receiver(config_dir, port=port, log=tmp / "receiver.log", **env):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def open_reads(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("contract-open")
    with serving(EXAMPLE_CONFIG, tmp) as url:
        yield url


@pytest.fixture(scope="module")
def protected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("contract-protected")
    env = {"RECEIVER_AUTH_PROTECT_READS": "true", "RECEIVER_AUTH_PROTECT_METRICS": "true"}
    with serving(EXAMPLE_CONFIG, tmp, **env) as url:
        yield url


def contract(security: openapi.Security) -> schemathesis.BaseSchema:
    """The document the receiver serves under `security` (test_the_served_document_is_the
    one_tested holds them equal): schemathesis' lazy loading from a fixture does not run on
    this pytest."""
    return schemathesis.openapi.from_dict(openapi.document(server.VERSION, security))


OPEN, PROTECTED = openapi.Security(), openapi.Security(protect_reads=True, protect_metrics=True)
reads_open, reads_protected = contract(OPEN), contract(PROTECTED)


@pytest.mark.parametrize(("fixture", "security"), [("open_reads", OPEN), ("protected", PROTECTED)])
def test_the_served_document_is_the_one_tested(
    request: pytest.FixtureRequest, fixture: str, security: openapi.Security
) -> None:
    url = request.getfixturevalue(fixture)
    with urllib.request.urlopen(f"{url}/api/v1/openapi.json", timeout=10) as answer:  # noqa: S310
        assert json.load(answer) == openapi.document(server.VERSION, security)


@reads_open.parametrize()
@EXAMPLES
def test_with_reads_open_the_receiver_answers_as_its_document_says(
    case: schemathesis.Case[Any], open_reads: str
) -> None:
    case.call_and_validate(base_url=open_reads, headers=AUTH, checks=CHECKS)


@reads_protected.parametrize()
@EXAMPLES
def test_with_reads_protected_the_receiver_answers_as_its_document_says(
    case: schemathesis.Case[Any], protected: str
) -> None:
    case.call_and_validate(base_url=protected, headers=AUTH, checks=CHECKS)


@reads_protected.parametrize()
@EXAMPLES
def test_without_credentials_the_receiver_answers_as_its_document_says(
    case: schemathesis.Case[Any], protected: str
) -> None:
    case.call_and_validate(base_url=protected, checks=CHECKS)
