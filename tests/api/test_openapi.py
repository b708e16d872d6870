"""The committed openapi.yaml is exactly what the app generates."""

from __future__ import annotations

from pathlib import Path

from api.openapi import openapi_yaml

ROOT = Path(__file__).resolve().parents[2]


def test_committed_openapi_matches_the_app() -> None:
    committed = (ROOT / "openapi.yaml").read_text()
    assert committed == openapi_yaml(), "openapi.yaml is stale: run `make openapi` and commit it"


def test_every_operation_is_documented() -> None:
    import yaml

    spec = yaml.safe_load(openapi_yaml())
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert operation.get("operationId"), (method, path)
            assert operation.get("summary") and operation.get("description"), (method, path)
