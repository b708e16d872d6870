"""The app's and the console's static files under their content version: the shell names
each file at /app/static/<sha256[:12]>/<name>, cached for a year; a changed file changes
every URL (and the service worker's cache name); unversioned URLs still answer; the shell
itself is never stored."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.factories import new_program

pytestmark = pytest.mark.sql

STATIC = Path(__file__).resolve().parents[2] / "console" / "static" / "app"
SERVED = (".js", ".css", ".html", ".svg", ".png", ".json", ".webmanifest")
YEAR = "public, max-age=31536000, immutable"


def expected_version(folder: Path) -> str:
    """Computed here from the files, as the README says: SHA-256 over each file's name, its
    length (8 bytes, big-endian) and its bytes, in name order; the first 12 hex digits."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in SERVED):
        body = path.read_bytes()
        digest.update(path.name.encode() + b"\0" + len(body).to_bytes(8, "big") + body)
    return digest.hexdigest()[:12]


def shell_urls(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/app/static/[^"]+)"', page)


async def test_the_shell_names_versioned_files_cached_for_a_year(client: Any) -> None:
    program = await new_program(client)
    shell = await client.get(f"/app/{program.id}")
    assert shell.status_code == 200 and shell.headers["cache-control"] == "no-store"
    version = expected_version(STATIC)
    urls = shell_urls(shell.text)
    assert {u.rsplit("/", 1)[1] for u in urls} >= {"main.js", "app.css", "icon.svg"}
    assert all(u.startswith(f"/app/static/{version}/") for u in urls), urls
    for url in urls:
        answer = await client.get(url)
        assert answer.status_code == 200 and answer.headers["cache-control"] == YEAR, url
        assert "script-src 'self'" in answer.headers["content-security-policy"]
    main = await client.get(f"/app/static/{version}/main.js")
    assert main.headers["content-type"].startswith("text/javascript")
    # Modules import each other relatively, so the browser asks for them under the same version.
    assert 'from "./api.js"' in main.text and "/app/static/" not in main.text
    # Links from before versions still work, revalidated rather than immutable.
    bare = await client.get("/app/static/main.js")
    assert bare.status_code == 200 and bare.content == main.content and "no-cache" in bare.headers["cache-control"]
    older = await client.get("/app/static/000000000000/main.js")
    assert older.status_code == 200 and "immutable" not in older.headers["cache-control"]
    assert (await client.get(f"/app/static/{version}/nothing.js")).status_code == 404
    assert (await client.get(f"/app/static/{version}/..%2Fpages.py")).status_code == 404
    # The manifest's icons and the service worker's cache carry the version too.
    manifest = (await client.get(f"/app/{program.id}/manifest.webmanifest")).json()
    assert all(i["src"].startswith(f"/app/static/{version}/") for i in manifest["icons"])
    worker = await client.get("/app/sw.js")
    assert worker.headers["cache-control"] == "no-cache"
    assert f'const VERSION = "{version}"' in worker.text and "@VERSION@" not in worker.text


async def test_a_changed_file_changes_every_url_and_the_worker_cache(client: Any, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from console.app import pages

    program = await new_program(client)
    copy = tmp_path / "app"
    shutil.copytree(STATIC, copy)
    monkeypatch.setattr(pages.ASSETS, "directory", copy)
    before = expected_version(copy)
    first = shell_urls((await client.get(f"/app/{program.id}")).text)
    assert all(f"/{before}/" in u for u in first)
    old_worker = (await client.get("/app/sw.js")).text

    (copy / "home.js").write_text((copy / "home.js").read_text() + "\n// a deploy\n")
    after = expected_version(copy)
    assert after != before
    second = shell_urls((await client.get(f"/app/{program.id}")).text)
    assert second == [u.replace(f"/{before}/", f"/{after}/") for u in first]
    worker = (await client.get("/app/sw.js")).text
    assert worker != old_worker and f'"{after}"' in worker
    offline = (await client.get(f"/app/static/{after}/offline.html")).text
    assert f"/app/static/{after}/app.css" in offline
    fresh = await client.get(f"/app/static/{after}/home.js")
    assert fresh.text.endswith("// a deploy\n") and fresh.headers["cache-control"] == YEAR
    stale = await client.get(f"/app/static/{before}/home.js")
    assert stale.text == fresh.text and "immutable" not in stale.headers["cache-control"]
