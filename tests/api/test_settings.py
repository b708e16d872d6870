"""Settings come from the environment and bad values are named clearly at start."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.settings import SettingsError, load_settings, resolve_secrets


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RW_ACCESS_TOKEN_TTL": "3600"}, "RW_ACCESS_TOKEN_TTL"),
        ({"RW_ACCESS_TOKEN_TTL": "soon"}, "RW_ACCESS_TOKEN_TTL"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"RW_REDIS_CLUSTER": "maybe"}, "RW_REDIS_CLUSTER"),
        ({"RW_OPERATOR_KEY": "short"}, "RW_OPERATOR_KEY"),
        ({"RW_LOG_LEVEL": "loud"}, "RW_LOG_LEVEL"),
        ({"RW_VALKEY_ALLOCATOR": "tcmalloc"}, "RW_VALKEY_ALLOCATOR"),
        ({"RW_VALKEY_ALLOCATOR": "/no/such/libjemalloc.so.2"}, "RW_VALKEY_ALLOCATOR: no such file"),
    ],
)
def test_a_bad_value_is_refused_with_the_variable_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(env)


def test_embedded_mode_generates_secrets_once_and_keeps_them(tmp_path: Path) -> None:
    settings = load_settings({"RW_DATA_DIR": str(tmp_path)})
    first, operator_key = resolve_secrets(settings)
    second, again = resolve_secrets(settings)
    assert operator_key is not None and operator_key.startswith("rwo_")
    assert again is None  # shown once
    assert (first.jwt_secret, first.encryption_key) == (second.jwt_secret, second.encryption_key)
    stored = json.loads((tmp_path / "secrets.json").read_text())
    assert operator_key not in json.dumps(stored)  # only its hash is kept
    assert (tmp_path / "secrets.json").stat().st_mode & 0o077 == 0


def test_external_stores_require_explicit_secrets(tmp_path: Path) -> None:
    settings = load_settings({"RW_DATA_DIR": str(tmp_path), "REDIS_URL": "redis://db:6379/0"})
    with pytest.raises(SettingsError, match="RW_JWT_SECRET"):
        resolve_secrets(settings)
