"""The documentation cannot drift: generated tables equal what the code renders, the OpenAPI
document names exactly the routes the service registers, and every link points at a file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import prometheus_client as prom
import pytest

from receiver import configuration, openapi, reference, server
from tests.conftest import EXAMPLE_CONFIG, ClientFactory, make_settings

ROOT = Path(__file__).resolve().parent.parent


def test_the_generated_tables_are_up_to_date() -> None:
    for name, (page, make) in reference.GENERATED.items():
        text = (reference.DOCS / page).read_text()
        assert reference.render(text, name, make()) == text, (
            f"docs/{page} is stale: run python -m receiver.reference"
        )


def test_the_openapi_document_names_every_route_and_no_other(tmp_path: Path) -> None:
    app = server.create_app(
        configuration.with_settings(EXAMPLE_CONFIG, make_settings(tmp_path)),
        registry=prom.CollectorRegistry(),
    )
    routes = set()
    for route in app.router.routes():
        if route.method == "HEAD":  # aiohttp adds one per GET
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter") or ""
        path = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)  # {asset:app\\.(js|css)} → {asset}
        routes.add((route.method.lower(), path))
    documented = {
        (method, path)
        for path, methods in openapi.document("test")["paths"].items()
        for method in methods
    }
    assert routes == documented


def test_every_link_of_the_readme_and_the_docs_points_at_a_file() -> None:
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            assert (page.parent / target).exists(), f"{page.name}: {target} does not exist"


def test_the_readme_stays_a_readme() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) < 150  # the reference is in docs/
    commands = re.findall(r"```sh\n(.*?)```", text, flags=re.S)[0]
    assert "receiver serve --config config/" in commands
    assert "scripts/test" in commands


async def test_the_service_serves_its_openapi_document(make_client: ClientFactory) -> None:
    client = await make_client()
    response = await client.get("/api/v1/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"] == "3.1.0"
    approve = document["paths"]["/api/v1/remediations/{id}/approve"]["post"]
    assert approve["security"] == [{"bearer": []}, {"basic": []}]
    assert set(approve["responses"]) == {"202", "400", "401", "404", "409"}
    problems = document["paths"]["/api/v1/problems"]["get"]
    assert "security" not in problems  # reads are open by default
    assert set(problems["responses"]) == {"200", "400"}


@pytest.mark.parametrize(
    ("overrides", "read_secured", "write_secured"),
    [
        ({"auth_protect_reads": True}, True, True),
        ({"auth_protect_reads": True, "auth_disabled": True, "auth_token": None}, False, False),
    ],
)
async def test_the_documents_security_is_the_configured_one(
    make_client: ClientFactory, overrides: dict[str, Any], read_secured: bool, write_secured: bool
) -> None:
    client = await make_client(**overrides)
    paths = (await (await client.get("/api/v1/openapi.json")).json())["paths"]
    for path, method, secured in (
        ("/api/v1/problems", "get", read_secured),
        ("/", "get", read_secured),
        ("/webhooks/alertmanager", "post", write_secured),
        ("/metrics", "get", False),  # auth.protect_metrics is off
        ("/healthz", "get", False),
    ):
        operation = paths[path][method]
        assert ("security" in operation, "401" in operation["responses"]) == (secured, secured)
