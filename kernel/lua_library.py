"""The one Redis function library, assembled from the kernel prelude and each package's part.

Redis functions cannot call across libraries, and loading a library replaces all of it, so
every process loads the same single library (`rw_wallet`): first the kernel prelude
(kernel/prelude.lua: idempotency records, the journal append, typed replies, bounds, and the
hooks parts share), then each package's part, in `PACKAGES` order. A package declares its
part as `LUA_PART` in its `keys.py` (the Redis layout it owns): the Lua files, in order, and
the prelude helpers they use.

Assembling checks each part against what it declared and refuses, loudly, a part that
  - uses a prelude helper it did not declare, or declares one it does not use or that the
    prelude lacks;
  - uses a top-level local of another package's part (only the prelude is shared);
  - defines a top-level local that a prelude helper or another part already defines.
The scan is textual: comments and string literals are blanked, then a helper counts as used
where its name stands alone (not as a field, `x.name`).

The kernel imports no other package: the parts are looked up by package name when the
library is first needed (`library()`), not imported here.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Callable, Sequence
from importlib import resources

import msgspec

NAME = "rw_wallet"
PACKAGES = ("wallet", "games", "programs", "fulfillment")
PRELUDE = "prelude.lua"


class LuaPart(msgspec.Struct, frozen=True):
    """One package's part of the library: its Lua files (package data, joined in this order)
    and the prelude helpers they use."""

    package: str
    files: tuple[str, ...]
    uses: frozenset[str]


class Library(msgspec.Struct, frozen=True):
    text: str
    functions: frozenset[str]
    gateable: frozenset[str]  # registered with register_gateable: a request's gate may ride in


class LuaLibraryError(Exception):
    """A part does not keep to its declaration; the library is not loaded."""


# Comments and strings, blanked before a scan: long comments, line comments, quoted strings,
# long strings.
_NOISE = re.compile(r"""--\[(=*)\[.*?\]\1\]|--[^\n]*|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|\[(=*)\[.*?\]\2\]""",
                    re.S)
_TOP_LOCAL = re.compile(r"^local\s+(?:function\s+)?([A-Za-z_]\w*)", re.M)
_REGISTERED = re.compile(r"""\b(redis\.register_function|register_gateable)\(\s*["'](\w+)["']""")


def _code(text: str) -> str:
    return _NOISE.sub(" ", text)


def top_locals(text: str) -> set[str]:
    """The names a Lua text defines at its top level (`local x`, `local function x`)."""
    return set(_TOP_LOCAL.findall(_code(text)))


def used(text: str, names: set[str]) -> set[str]:
    """Which of `names` the Lua text refers to, outside comments and strings and not as a field."""
    if not names:
        return set()
    pattern = re.compile(r"(?<![\w.:])(" + "|".join(sorted(map(re.escape, names))) + r")\b")
    return set(pattern.findall(_code(text)))


def _read(package: str, name: str) -> str:
    return resources.files(package).joinpath(name).read_text()


def assemble(parts: Sequence[LuaPart], prelude: str | None = None, name: str = NAME,
             read: Callable[[str, str], str] = _read) -> Library:
    """The library's text from the prelude (kernel/prelude.lua unless given) and `parts`, in
    order, their files read with `read(package, file)`; raises LuaLibraryError when a part
    does not keep to its declaration."""
    prelude = _read("kernel", PRELUDE) if prelude is None else prelude
    shared = top_locals(prelude)
    texts = {part.package: {f: read(part.package, f) for f in part.files} for part in parts}
    owned = {part.package: set().union(*(top_locals(t) for t in texts[part.package].values())) for part in parts}
    problems = []
    for part in parts:
        where = f"{part.package}'s LUA_PART ({', '.join(f'{part.package}/{f}' for f in part.files)})"
        for file, text in texts[part.package].items():
            undeclared = used(text, shared) - part.uses
            if undeclared:
                problems.append(f"{part.package}/{file} uses prelude helper(s) {', '.join(sorted(undeclared))} "
                                f"that {where} does not declare")
            for other, theirs in owned.items():
                crossing = used(text, theirs) if other != part.package else set()
                if crossing:
                    problems.append(f"{part.package}/{file} uses {', '.join(sorted(crossing))} of {other}'s part; "
                                    "only the prelude is shared (move it there)")
        whole = "\n".join(texts[part.package].values())
        unknown = part.uses - shared
        if unknown:
            problems.append(f"{where} declares {', '.join(sorted(unknown))}, not in the prelude")
        unused = (part.uses & shared) - used(whole, shared)
        if unused:
            problems.append(f"{where} declares {', '.join(sorted(unused))} but never uses it")
        clash = owned[part.package] & (shared | set().union(*(v for k, v in owned.items() if k != part.package)))
        if clash:
            problems.append(f"{part.package}'s part defines {', '.join(sorted(clash))} again "
                            "(the prelude or another part already does)")
    if problems:
        raise LuaLibraryError("the Redis function library cannot be assembled:\n  " + "\n  ".join(problems))
    body = [prelude] + [text for part in parts for text in texts[part.package].values()]
    text = f"#!lua name={name}\n" + "\n".join(body)
    registered = _REGISTERED.findall(_code_keep_strings(text))
    return Library(text=text, functions=frozenset(n for _, n in registered),
                   gateable=frozenset(n for how, n in registered if how == "register_gateable"))


def _code_keep_strings(text: str) -> str:
    """The text without its comments (registrations name their function in a string)."""
    return re.sub(r"--\[(=*)\[.*?\]\1\]|--[^\n]*", " ", text, flags=re.S)


@functools.cache
def library() -> Library:
    """The product's library: the prelude and every package's `LUA_PART` (its keys.py)."""
    return assemble([importlib.import_module(f"{package}.keys").LUA_PART for package in PACKAGES])
