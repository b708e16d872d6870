"""`reward-wallet`: serve the API, manage programs offline, and check the books."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from api.http_protocol import ONE_WRITE
from api.settings import Settings, SettingsError, load_settings, resolve_secrets


def _settings() -> tuple[Settings, str | None]:
    from api.embedded import secure_data_dir

    try:
        settings, new_operator_key = resolve_secrets(load_settings())
    except SettingsError as exc:
        print(f"reward-wallet: bad setting: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    secure_data_dir(settings.data_path)  # before any command makes a file there
    return settings, new_operator_key


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


T = TypeVar("T")


async def _pooled(settings: Settings, work: Callable[[], Awaitable[T]]) -> T:
    """`work()` with the SQL pool open: without one, Postgres connects again for every query
    (reconcile and audit make a few per program)."""
    from api.sql import open_sql

    close = await open_sql(settings)
    try:
        return await work()
    finally:
        await close()


PROGRAMS_AT_ONCE = 8  # reconcile and audit: programs checked side by side (each one in order)


async def _per_program(program_ids: list[str], check: Callable[[str], Awaitable[T]]) -> list[T]:
    """`check` of each program, a few at a time (an install has thousands; each check waits
    on SQL and Redis more than it computes), answered in the programs' order."""
    gate = asyncio.Semaphore(PROGRAMS_AT_ONCE)

    async def one(program_id: str) -> T:
        async with gate:
            return await check(program_id)

    # A failed check cancels the rest before the stores close (no stray task left to fail),
    # and its own error is what the command reports.
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(program_id)) for program_id in program_ids]
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]


# --- serve -------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api.embedded import EmbeddedValkey
    from api.logs import configure_logging
    from api.migrate import migrate
    from api.worker import start_worker_process, stop_worker_process

    settings, new_operator_key = _settings()
    configure_logging(settings.log_level)
    if args.workers < 1:
        print("reward-wallet: --workers must be at least 1", file=sys.stderr)
        return 2
    valkey = None
    if settings.redis_url is None:
        valkey = EmbeddedValkey(settings.data_path, allocator=settings.valkey_allocator)
        if valkey.running_elsewhere():
            print("reward-wallet: another `serve` is already running on this RW_DATA_DIR", file=sys.stderr)
            return 1
        valkey.start()
        # Workers read their settings from the environment: point them at this server.
        os.environ["REDIS_URL"] = valkey.url
        os.environ["RW_EMBEDDED_VALKEY"] = "1"
        settings = msgspec.structs.replace(settings, redis_url=valkey.url, embedded_valkey=True)
    if not os.environ.get("RW_PUBLIC_URL", "").strip():
        # Links in emails and answers name the address this server listens on.
        host = f"[{args.host}]" if ":" in args.host else args.host
        os.environ["RW_PUBLIC_URL"] = f"http://{host}:{args.port}"
        settings = msgspec.structs.replace(settings, public_url=os.environ["RW_PUBLIC_URL"])
    if args.workers > 1:
        _share_metrics(settings.data_path / "metrics")
    worker = None
    try:
        _run(migrate())
        if args.demo:
            from api.demo import seed_demo

            print(_run(seed_demo(settings, new_operator_key, args.host, args.port)), flush=True)
        elif new_operator_key:
            print(f"Operator key (shown once; store it safely): {new_operator_key}", flush=True)
        # Every API worker shares the one Valkey and the one SQL store; none runs background
        # work. One worker process beside them (api/worker.py) projects the journal, delivers
        # webhooks and runs the sweeps; it dies with this process, even on `kill -9`.
        if not args.no_worker:
            worker = start_worker_process(stderr=None)
        if args.workers > 1:
            from api.sql import close_sqlite_writer

            close_sqlite_writer()
        # SIGTERM or Ctrl-C: uvicorn stops accepting and lets in-flight requests finish (up
        # to 20 s); only then is the worker told to stop (it drains the journal into the
        # ledger), and last of all Valkey stops. A signal only asks: uvicorn would re-raise
        # it after its own shutdown and end this process before the worker has drained.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: None)
        uvicorn.run(
            "api.asgi:app_factory",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_config=None,
            access_log=False,
            # No `server: uvicorn` on every answer: one header less to write, nothing told
            # about the software behind the API.
            server_header=False,
            # A turn's answers together at its end, each in one write (api/http_protocol.py).
            http=ONE_WRITE if settings.http_one_write else "httptools",
            timeout_graceful_shutdown=20,
            # Only a named proxy's X-Forwarded-For decides the client address (which the
            # rate limits count); with none named, uvicorn's default (trust 127.0.0.1) is off too.
            proxy_headers=bool(settings.trusted_proxy_list),
            forwarded_allow_ips=settings.trusted_proxy_list or None,
        )
    finally:
        if worker is not None:
            stop_worker_process(worker)
        if valkey is not None:
            valkey.stop()
    return 0


def _share_metrics(folder: Path) -> None:
    """Workers write their counters to files here, so a scrape of any one of them reports
    the sum over all (prometheus_client's multiprocess mode). Set before any worker imports
    prometheus_client; an operator's own PROMETHEUS_MULTIPROC_DIR wins. Last run's files go:
    their processes are gone."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)


# --- programs and participants -----------------------------------------------------------


def cmd_program_create(args: argparse.Namespace) -> int:
    from api.migrate import migrate
    from programs.programs import NewProgram, create_program

    settings, _ = _settings()
    try:
        spec = msgspec.convert(
            {"name": args.name, "point_value_cents": args.point_value_cents, "currency": args.currency,
             "point_name": args.point_name},
            NewProgram,
        )
    except msgspec.ValidationError as exc:
        print(f"reward-wallet: {exc}", file=sys.stderr)
        return 2

    async def go() -> tuple[Any, str]:
        await migrate()
        return await create_program(spec)

    program, admin_key = _run(go())
    if args.json:
        print(json.dumps({"program_id": program.id, "admin_key": admin_key}))
    else:
        print(f"Program {program.name!r} created: {program.id}\nAdmin key (shown once): {admin_key}")
    return 0


def cmd_participants_import(args: argparse.Namespace) -> int:
    from api.embedded import redis_url_for
    from api.migrate import migrate
    from programs.participant_imports import import_sheet
    from programs.programs import get_program
    from programs.spreadsheet import read_file
    from wallet.store import WalletStore
    from kernel.redis_functions import connect

    settings, _ = _settings()
    text = read_file(args.file)

    async def go(url: str) -> Any:
        await migrate()
        await get_program(args.program)
        client = connect(url, cluster=settings.redis_cluster, coalesce=settings.redis_coalesce)
        try:
            return await import_sheet(WalletStore(client), args.program, text)
        finally:
            await client.aclose()

    with redis_url_for(settings.data_path, settings.redis_url, settings.valkey_allocator) as url:
        report = _run(go(url))
    print(msgspec.json.encode(report).decode())
    return 1 if report.errors else 0


def cmd_catalog_import(args: argparse.Namespace) -> int:
    from api.embedded import redis_url_for
    from api.migrate import migrate
    from catalog.changes import import_feed
    from programs.programs import get_program
    from programs.spreadsheet import read_file
    from kernel.redis_functions import connect

    settings, _ = _settings()
    path = Path(args.file)
    fmt = args.format or ("json" if path.suffix.lower() == ".json" else "csv")
    content = read_file(args.file)

    async def go(url: str) -> Any:
        await migrate()
        program = await get_program(args.program)
        client = connect(url, cluster=settings.redis_cluster, coalesce=settings.redis_coalesce)
        try:
            return await import_feed(client, program, content, fmt)  # phones see the new catalog (new ETag)
        finally:
            await client.aclose()

    with redis_url_for(settings.data_path, settings.redis_url, settings.valkey_allocator) as url:
        report = _run(go(url))
    print(msgspec.json.encode(report).decode())
    return 1 if report.errors else 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Recomputes a published proof offline (no stores, no settings): exit 0 only if it holds."""
    from games.fairness import verify_spin_proof, verify_sweepstakes_proof

    try:
        document = json.loads(Path(args.file).read_text(encoding="utf-8"))
        entries = Path(args.entries).read_bytes() if getattr(args, "entries", None) else None
    except (OSError, ValueError) as exc:
        print(f"verify: cannot read the proof: {exc}", file=sys.stderr)
        return 2
    if not isinstance(document, dict):
        print("verify: the proof is not a JSON object", file=sys.stderr)
        return 2
    if args.kind == "statement":
        return _verify_statement(document, getattr(args, "public_key", None))
    result = verify_spin_proof(document) if args.kind == "spin" else verify_sweepstakes_proof(document, entries)
    if result.ok:
        print(f"verify: the {args.kind} proof holds")
        return 0
    print(f"verify: the {args.kind} proof does NOT hold:")
    for problem in result.problems:
        print(f"  - {problem}")
    return 1


def _verify_statement(document: dict[str, Any], public_key: str | None) -> int:
    from wallet.statements import verify

    problems = verify(document, public_key)
    if not problems:
        count = len(document.get("entries") or [])
        print(f"verify: the statement holds ({count} entr{'y' if count == 1 else 'ies'}, "
              f"{len(document.get('checkpoints') or [])} signed checkpoint(s), key "
              f"{(document.get('public_key') or {}).get('key_id')})")
        return 0
    print("verify: the statement does NOT hold:")
    for problem in problems:
        print(f"  - {problem}")
    return 1


# --- the books ---------------------------------------------------------------------------


async def _project_everything(client: Any) -> None:
    from programs.programs import list_program_ids
    from api import projection
    from wallet.journal import JournalProjector

    projection.wire()
    projector = JournalProjector(client, consumer="cli", claim_idle_ms=0)
    await projector.project_all(await list_program_ids())


def cmd_reconcile(args: argparse.Namespace) -> int:
    """Exit 0 when the books agree, 1 on drift or entries set aside, 2 when it could not
    look: always a table or a sentence, never a traceback."""
    from api.embedded import redis_url_for
    from api.migrate import migrate
    from programs.programs import list_program_ids
    from wallet.journal import DeadLetter, dead_letters
    from wallet.reconcile import reconcile_program
    from kernel.redis_functions import connect

    settings, _ = _settings()

    async def go(url: str) -> tuple[list[Any], list[tuple[str, DeadLetter]]]:
        await migrate()
        client = connect(url, cluster=settings.redis_cluster, coalesce=settings.redis_coalesce)
        try:
            # Bring the ledger up to date first: waiting journal entries are not drift.
            await _project_everything(client)
            async def check(program_id: str) -> tuple[list[Any], list[tuple[str, DeadLetter]]]:
                drifted = await reconcile_program(client, program_id)
                return drifted, [(program_id, d) for d in await dead_letters(client, program_id)]

            checked = await _per_program(await list_program_ids(), check)
            return [d for drifted, _ in checked for d in drifted], [x for _, set_aside in checked for x in set_aside]
        finally:
            await client.aclose()

    try:
        with redis_url_for(settings.data_path, settings.redis_url, settings.valkey_allocator) as url:
            drifts, letters = _run(_pooled(settings, lambda: go(url)))
    except Exception as exc:  # a store down or unreadable: say so in one line
        print(f"reconcile: could not compare the books: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    if letters:
        print(f"reconcile: {len(letters)} journal entr{'y' if len(letters) == 1 else 'ies'} set aside "
              "(the ledger could not hold them; their moves are not in it)")
        print(f"{'program':<32} {'journal entry':<20} {'transaction':<32} reason")
        for program_id, letter in letters:
            print(f"{program_id:<32} {letter.stream_id:<20} {letter.transaction_id:<32} {letter.reason}")
    if not drifts and not letters:
        print("reconcile: every Redis balance equals its ledger sum")
        return 0
    if not drifts:
        print("reconcile: every Redis balance equals its ledger sum")
        return 1
    print(f"reconcile: {len(drifts)} account(s) drift")
    print(f"{'program':<32} {'account':<48} {'redis':>20} {'ledger':>20} {'diff':>21}")
    for d in drifts:
        print(f"{d.program_id:<32} {d.account:<48} {d.redis:>20} {d.ledger:>20} {d.redis - d.ledger:>+21}")
    return 1


def cmd_rebuild(args: argparse.Namespace) -> int:
    from api.embedded import redis_url_for
    from api.migrate import migrate
    from fulfillment.partners import restore_key_marks
    from programs.participants import inactive_participant_ids
    from programs.programs import get_program, list_program_ids, sync_status
    from programs.tables import Participant
    from wallet.reconcile import rebuild_program
    from wallet.store import WalletStore
    from kernel.redis_functions import connect

    settings, _ = _settings()

    async def go(url: str) -> int:
        await migrate()
        client = connect(url, cluster=settings.redis_cluster, coalesce=settings.redis_coalesce)
        store = WalletStore(client)
        total = 0
        try:
            await _project_everything(client)
            for program_id in await list_program_ids():
                rows = await Participant.select(Participant.id).where(Participant.program_id == program_id).run()
                total += await rebuild_program(client, program_id, [r["id"] for r in rows])
                for participant_id in await inactive_participant_ids(program_id):
                    await store.set_inactive(program_id, participant_id, True)
                await sync_status(store, program_id, (await get_program(program_id)).status)
                await restore_key_marks(client, program_id)
        finally:
            await client.aclose()
        return total

    with redis_url_for(settings.data_path, settings.redis_url, settings.valkey_allocator) as url:
        count = _run(_pooled(settings, lambda: go(url)))
    print(f"rebuild: wrote {count} wallet(s) from the ledger")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """Walks each program's hash chain from genesis (SQL only: it needs no Redis). Exit 0
    when every chain holds, 1 naming the program and the first broken entry, 2 when it could
    not look."""
    from api.migrate import migrate
    from programs.programs import list_program_ids
    from wallet.chain import ChainReport
    from wallet.checkpoints import audit

    settings, _ = _settings()

    async def go() -> list[ChainReport] | None:
        await migrate()
        known = await list_program_ids()
        if args.program_id is not None and args.program_id not in known:
            return None
        return await _per_program([args.program_id] if args.program_id else known, audit)

    try:
        reports = _run(_pooled(settings, go))
    except Exception as exc:
        print(f"audit: could not read the ledger: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    if reports is None:
        print(f"audit: no program {args.program_id}", file=sys.stderr)
        return 2
    broken = 0
    for report in reports:
        problem = report.problem
        if problem is None:
            waiting = f", {report.unlinked} newer entr{'y' if report.unlinked == 1 else 'ies'} not yet linked" \
                if report.unlinked else ""
            print(f"audit: program {report.program_id}: the chain holds ({report.entries} entries, "
                  f"head {report.head_link}{waiting})")
            continue
        broken += 1
        where = f"seq {problem.seq}" if problem.seq else "an unlinked entry"
        names = ", ".join(f"{label} {value}" for label, value in
                          (("stream id", problem.stream_id), ("transaction", problem.transaction_id)) if value)
        print(f"audit: program {report.program_id}: BROKEN at {where}" + (f" ({names})" if names else "")
              + f": {problem.problem}: {problem.detail}")
    return 1 if broken else 0


def cmd_expire(args: argparse.Namespace) -> int:
    from api.embedded import redis_url_for
    from api.migrate import migrate
    from programs.expiry import sweep_all
    from api import projection
    from wallet.journal import JournalProjector
    from wallet.store import WalletStore
    from kernel.redis_functions import connect

    settings, _ = _settings()

    async def go(url: str) -> dict[str, Any]:
        await migrate()
        client = connect(url, cluster=settings.redis_cluster, coalesce=settings.redis_coalesce)
        try:
            projection.wire()
            projector = JournalProjector(client, consumer="cli-expire", claim_idle_ms=0)
            return await sweep_all(WalletStore(client), projector.project_program)
        finally:
            await client.aclose()

    with redis_url_for(settings.data_path, settings.redis_url, settings.valkey_allocator) as url:
        results = _run(go(url))
    for program_id, result in results.items():
        print(f"expire: {program_id}: {result.points} points of {result.participants} participant(s)")
    if not results:
        print("expire: no program has an expiry policy")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Every background task (api/background.py), until SIGINT or SIGTERM, or until the `serve`
    that started this process (`--parent-pid`) is gone; then they stop and the journal drains."""
    from api.embedded import redis_url_for
    from api.logs import configure_logging
    from api.migrate import migrate
    from api.worker import run_worker, watch_parent
    from kernel import heap

    settings, _ = _settings()
    configure_logging(settings.log_level)
    # Its heavy writes are the projector's jobs, on the writer thread: its few single writes
    # join them there, in one queue, instead of meeting them in SQLite's busy handler.
    from api.sql import close_sqlite_writer

    close_sqlite_writer(for_good=True)

    async def go(url: str) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        watching = None
        if args.parent_pid is not None:
            watching = asyncio.create_task(watch_parent(args.parent_pid, stop))
        await migrate()
        heap.settle()  # as the API does (kernel/heap.py)
        try:
            await run_worker(settings, url, stop, expiry_every=args.expiry_every,
                             pause_before_ack=float(os.environ.get("RW_FAULT_PAUSE_BEFORE_ACK", "0")))
        finally:
            stop.set()
            if watching is not None:
                await watching

    with redis_url_for(settings.data_path, settings.redis_url, settings.valkey_allocator) as url:
        _run(go(url))
    return 0


def cmd_openapi(args: argparse.Namespace) -> int:
    from api.openapi import openapi_yaml

    sys.stdout.write(openapi_yaml())
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from api.migrate import migrate

    _settings()
    _run(migrate())
    print("migrations applied")
    return 0


# --- console users -----------------------------------------------------------------------


def cmd_console_user_create(args: argparse.Namespace) -> int:
    from api.migrate import migrate
    from programs import console_users

    settings, _ = _settings()
    if args.role not in console_users.ROLES:
        print(f"reward-wallet: --role must be one of {', '.join(console_users.ROLES)}", file=sys.stderr)
        return 2
    password = None
    if args.password_stdin:
        # The first line of standard input, without its line end: a password never goes on
        # the command line (other users see it in the process list).
        password = sys.stdin.readline().rstrip("\r\n")

    async def go() -> Any:
        await migrate()
        if password is not None:
            return await console_users.create_with_password(args.program_id, args.email, args.role, password,
                                                            args.display_name)
        spec = msgspec.convert({"email": args.email, "display_name": args.display_name or args.email.split("@")[0],
                                "role": args.role}, console_users.NewConsoleUser)
        return await console_users.add_console_user(args.program_id, spec, settings.public_base)

    try:
        created = _run(go())
    except msgspec.ValidationError as exc:
        print(f"reward-wallet: {exc}", file=sys.stderr)
        return 2
    print(f"Console user {created.email} ({created.id}) is {created.role} of {args.program_id}")
    if created.invite_url:
        print(f"Invite link (one use, 72 hours): {created.invite_url}")
    else:
        print(f"Sign in at {settings.public_base}/console/sign-in")
    return 0


# --- parser ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reward-wallet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API (starts the embedded Valkey without REDIS_URL)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="worker processes, all on the same stores")
    serve.add_argument("--demo", action="store_true", help="seed a demo program and print its keys")
    serve.add_argument("--no-worker", action="store_true",
                       help="start no worker process beside the API (`reward-wallet worker` runs on another machine)")
    serve.set_defaults(func=cmd_serve)

    program = sub.add_parser("program", help="programs").add_subparsers(dest="action", required=True)
    create = program.add_parser("create", help="create a program and print its first admin key")
    create.add_argument("name")
    create.add_argument("--point-value-cents", type=int, default=1)
    create.add_argument("--currency", default="USD")
    create.add_argument("--point-name", default="points")
    create.add_argument("--json", action="store_true")
    create.set_defaults(func=cmd_program_create)

    people = sub.add_parser("participants", help="participants").add_subparsers(dest="action", required=True)
    imp = people.add_parser("import", help="upsert participants from a CSV file")
    imp.add_argument("file")
    imp.add_argument("--program", required=True)
    imp.set_defaults(func=cmd_participants_import)

    catalog = sub.add_parser("catalog", help="the gift-card catalog").add_subparsers(dest="action", required=True)
    feed = catalog.add_parser("import", help="upsert items from a supplier feed (CSV or JSON) by sku")
    feed.add_argument("file")
    feed.add_argument("--program", required=True)
    feed.add_argument("--format", choices=["csv", "json"], help="default: from the file's extension")
    feed.set_defaults(func=cmd_catalog_import)

    verify = sub.add_parser("verify", help="recompute a published provably-fair proof").add_subparsers(
        dest="kind", required=True)
    spin = verify.add_parser("spin", help="a spin's proof (once its server seed is revealed)")
    spin.add_argument("file")
    spin.set_defaults(func=cmd_verify)
    sweep = verify.add_parser("sweepstakes", help="a sweepstakes draw's proof, with its entries file")
    sweep.add_argument("file")
    sweep.add_argument("--entries", help="the published entries.csv (needed to recompute the draw)")
    sweep.set_defaults(func=cmd_verify)
    statement = verify.add_parser("statement", help="a participant's ledger statement: every entry's link, Merkle "
                                                    "proof and checkpoint signature")
    statement.add_argument("file")
    statement.add_argument("--public-key", help="the program's published public key (hex): the statement must "
                                                "carry this one")
    statement.set_defaults(func=cmd_verify)

    sub.add_parser("reconcile", help="compare Redis balances with the ledger; exit 1 on drift").set_defaults(
        func=cmd_reconcile)
    sub.add_parser("rebuild", help="restore Redis balances from the ledger").set_defaults(func=cmd_rebuild)
    audit = sub.add_parser("audit", help="walk each program's ledger hash chain from genesis and check its signed "
                                         "checkpoints; exit 1 naming the first broken entry or checkpoint")
    audit.add_argument("program_id", nargs="?", default=None, help="one program (default: every program)")
    audit.set_defaults(func=cmd_audit)
    worker = sub.add_parser("worker", help="run every background task: the journal projector, webhook deliveries, "
                                           "the order sweep, spin completion, the periodic expiry sweep, ledger checkpoints and the "
                                           "program-news follower")
    worker.add_argument("--expiry-every", type=float, default=3600.0, help="seconds between expiry sweeps")
    # Set by `serve` for the worker it starts: stop when that process is gone.
    worker.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    worker.set_defaults(func=cmd_worker)
    sub.add_parser("expire", help="expire points due under each program's policy, once").set_defaults(
        func=cmd_expire)
    sub.add_parser("openapi", help="print the OpenAPI document (YAML)").set_defaults(func=cmd_openapi)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    console = sub.add_parser("console-user", help="people who sign in to the manager console").add_subparsers(
        dest="action", required=True)
    person = console.add_parser("create", help="give a person (new, or found by email) a role in a program")
    person.add_argument("program_id")
    person.add_argument("email")
    person.add_argument("--role", default="owner", help="owner, manager or viewer (default owner)")
    person.add_argument("--display-name", default=None)
    person.add_argument("--password-stdin", action="store_true",
                        help="set the password read from standard input (else print an invite link)")
    person.set_defaults(func=cmd_console_user_create)
    return parser


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("PICCOLO_CONF", "piccolo_conf")
    args = build_parser().parse_args(argv)
    from kernel.errors import DomainError

    try:
        code = args.func(args)
    except DomainError as exc:
        print(f"reward-wallet: {exc.detail}", file=sys.stderr)
        code = 1
    raise SystemExit(code)
