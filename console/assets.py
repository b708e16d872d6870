"""Static files under a content version: `/app/static/<version>/main.js`.

The version is the first 12 hex digits of SHA-256 over every file's name and bytes, so a
deploy that changes any file changes every URL, and a URL that carries the current version
may be cached for a year (`immutable`). ES modules import each other by relative paths
(`./api.js`), which the browser resolves under the importing module's versioned folder, so
imports carry the version with no rewriting and no import map (the CSP allows no inline
script). A file may name its own version with `@VERSION@` (the service worker's cache name,
the offline page's links); it is filled in as the file is served.

Unversioned URLs (`/app/static/main.js`, from before versions or from a test) and URLs of
another version still answer the current file, revalidated each time instead of immutable:
their bytes may not be what that URL meant.

The files are read again when one changes on disk (checked by size and mtime on each use),
so editing a script under a running `make run` shows on the next reload.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec
from litestar import Response
from litestar.exceptions import NotFoundException

PLACEHOLDER = b"@VERSION@"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "public, no-cache"
MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
               ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
               ".json": "application/json", ".webmanifest": "application/manifest+json"}
_TEXT = {".js", ".css", ".html", ".svg", ".json"}


class Snapshot(msgspec.Struct, frozen=True):
    signature: tuple[tuple[str, int, int], ...]
    version: str
    files: dict[str, bytes]  # name -> bytes as served (version filled in)


def version_of(files: dict[str, bytes]) -> str:
    """SHA-256 over each file's name and raw bytes, in name order; 12 hex digits."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + len(files[name]).to_bytes(8, "big") + files[name])
    return digest.hexdigest()[:12]


class StaticAssets:
    """One folder of static files served under `prefix`, flat (no subfolders)."""

    def __init__(self, directory: Path, prefix: str) -> None:
        self.directory = directory
        self.prefix = prefix.rstrip("/")
        self._snapshot: Snapshot | None = None

    def _signature(self) -> tuple[tuple[str, int, int], ...]:
        found = []
        for path in sorted(self.directory.iterdir()):
            if path.is_file() and path.suffix in MEDIA_TYPES:
                stat = path.stat()
                found.append((path.name, stat.st_size, stat.st_mtime_ns))
        return tuple(found)

    def snapshot(self) -> Snapshot:
        signature = self._signature()
        if self._snapshot is None or self._snapshot.signature != signature:
            raw = {name: (self.directory / name).read_bytes() for name, _, _ in signature}
            version = version_of(raw)
            served = {name: body.replace(PLACEHOLDER, version.encode()) if Path(name).suffix in _TEXT else body
                      for name, body in raw.items()}
            self._snapshot = Snapshot(signature=signature, version=version, files=served)
        return self._snapshot

    @property
    def version(self) -> str:
        return self.snapshot().version

    def url(self, name: str) -> str:
        """The versioned URL of one file, for templates and manifests."""
        return f"{self.prefix}/{self.version}/{name}"

    def names(self) -> list[str]:
        return sorted(self.snapshot().files)

    def body(self, name: str) -> bytes | None:
        return self.snapshot().files.get(name)

    def response(self, name: str, version: str | None) -> Response[bytes]:
        """The file; immutable only under the current version."""
        snapshot = self.snapshot()
        body = snapshot.files.get(name)
        if body is None:
            raise NotFoundException("no such file")
        cache = IMMUTABLE if version == snapshot.version else REVALIDATE
        return Response(body, media_type=MEDIA_TYPES[Path(name).suffix], headers={"Cache-Control": cache})


__all__ = ["IMMUTABLE", "REVALIDATE", "StaticAssets", "version_of"]
