"""The `reward-wallet` command as an operator uses it, on a data dir of its own."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

from api.embedded import EmbeddedValkey
from tests.conftest import free_port
from tests.factories import wait_ready

REWARD_WALLET = str(Path(sys.executable).parent / "reward-wallet")


def isolated_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "DATABASE_URL", "RW_JWT_SECRET", "RW_ENCRYPTION_KEY", "RW_EMBEDDED_VALKEY")}
    env["RW_DATA_DIR"] = str(data_dir)
    return env


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([REWARD_WALLET, *args], env=isolated_env(data_dir), capture_output=True, text=True,
                          timeout=120)


def test_program_create_prints_json_and_the_key_works(tmp_path: Path) -> None:
    created = cli(tmp_path, "program", "create", "Acme Channel", "--point-value-cents", "2", "--json")
    assert created.returncode == 0, created.stderr
    answer = json.loads(created.stdout)
    assert set(answer) == {"program_id", "admin_key"}
    bad = cli(tmp_path, "program", "create", "X", "--currency", "dollars", "--json")
    assert bad.returncode == 2 and "currency" in bad.stderr


def test_bad_settings_stop_the_command_with_the_variable_named(tmp_path: Path) -> None:
    env = {**isolated_env(tmp_path), "RW_ACCESS_TOKEN_TTL": "3600"}
    result = subprocess.run([REWARD_WALLET, "migrate"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "RW_ACCESS_TOKEN_TTL" in result.stderr


def serve_and_move_points(data_dir: Path, admin_key: str) -> str:
    port = free_port()
    server = subprocess.Popen([REWARD_WALLET, "serve", "--port", str(port)], env=isolated_env(data_dir),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base)
        admin = {"Authorization": f"Bearer {admin_key}"}
        person = httpx.post(base + "/v1/participants", json={"external_id": "e1", "display_name": "Eve"},
                            headers=admin).json()["id"]
        for i, points in enumerate([120, 80]):
            httpx.post(base + "/v1/points/grants", json={"participant_id": person, "points": points, "reason": "x"},
                       headers={**admin, "Idempotency-Key": f"g{i}"}).raise_for_status()
        httpx.post(base + "/v1/points/deductions", json={"participant_id": person, "points": 50, "reason": "x"},
                   headers={**admin, "Idempotency-Key": "d"}).raise_for_status()
    finally:
        os.killpg(server.pid, signal.SIGINT)  # graceful: the projector drains before exit
        server.wait(timeout=30)
    return person


def test_reconcile_finds_drift_and_rebuild_restores_redis_from_the_ledger(tmp_path: Path) -> None:
    program = json.loads(cli(tmp_path, "program", "create", "Books", "--json").stdout)
    person = serve_and_move_points(tmp_path, program["admin_key"])
    # Ctrl-C drained the journal: the ledger already holds all three transactions.
    with sqlite3.connect(tmp_path / "reward-wallet.sqlite3") as db:
        kinds = sorted(k for (k,) in db.execute("SELECT kind FROM ledger_entries WHERE participant_id = ?", (person,)))
    assert kinds == ["deduction", "grant", "grant"]

    clean = cli(tmp_path, "reconcile")
    assert clean.returncode == 0, clean.stdout + clean.stderr

    # Tamper with a balance behind the ledger's back.
    valkey = EmbeddedValkey(tmp_path)
    valkey.start()
    wallet_key = f"rw:{{p:{program['program_id']}}}:w:{person}"
    try:
        redis.Redis.from_url(valkey.url).hincrby(wallet_key, "available", 7)
        drift = cli(tmp_path, "reconcile")
        assert drift.returncode == 1
        assert f"available:{person}" in drift.stdout and "+7" in drift.stdout
        assert cli(tmp_path, "rebuild").returncode == 0
        assert cli(tmp_path, "reconcile").returncode == 0
    finally:
        valkey.stop()

    # Lose Redis entirely: rebuild writes every balance back from the ledger.
    shutil.rmtree(tmp_path / "valkey")
    rebuilt = cli(tmp_path, "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    # The ledger's hash chain lives in SQL: it survives the loss whole.
    audited = cli(tmp_path, "audit")
    assert audited.returncode == 0 and "the chain holds (3 entries" in audited.stdout, audited.stdout + audited.stderr
    valkey = EmbeddedValkey(tmp_path)
    valkey.start()
    try:
        values = redis.Redis.from_url(valkey.url).hmget(wallet_key, "available", "held", "earned", "open")
        assert [int(v) for v in values] == [150, 0, 200, 1]
    finally:
        valkey.stop()
    assert cli(tmp_path, "reconcile").returncode == 0


def test_participants_import_reports_bad_rows_and_enrols_the_good_ones(tmp_path: Path) -> None:
    program = json.loads(cli(tmp_path, "program", "create", "Importers", "--json").stdout)
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("external_id,display_name,email\nd-1,Dana,dana@d.example\nd-2,,\nd-3,Lee,not-mail\n"
                        "d-4,Kim,\n", encoding="utf-8")
    result = cli(tmp_path, "participants", "import", str(csv_file), "--program", program["program_id"])
    assert result.returncode == 1  # some rows were bad
    report = json.loads(result.stdout)
    assert report["created"] == 2
    assert [e["row"] for e in report["errors"]] == [3, 4]
    again = cli(tmp_path, "participants", "import", str(csv_file), "--program", program["program_id"])
    assert json.loads(again.stdout)["unchanged"] == 2
    missing = cli(tmp_path, "participants", "import", str(csv_file), "--program", "prg_nope")
    assert missing.returncode == 1 and missing.stderr.strip() == "reward-wallet: no such program"


def test_catalog_import_upserts_a_supplier_feed_by_sku(tmp_path: Path) -> None:
    program = json.loads(cli(tmp_path, "program", "create", "Feeds", "--json").stdout)
    feed = tmp_path / "feed.json"
    feed.write_text(json.dumps([
        {"sku": "AMZ-25", "brand": "Amazon", "name": "Amazon $25", "face_value": 2500, "countries": ["US"]},
        {"sku": "BAD", "brand": "Amazon", "name": "No value"},
    ]))
    first = cli(tmp_path, "catalog", "import", str(feed), "--program", program["program_id"])
    assert first.returncode == 1  # one bad row
    report = json.loads(first.stdout)
    assert report["created"] == 1 and [e["sku"] for e in report["errors"]] == ["BAD"]
    feed.write_text(json.dumps([{"sku": "AMZ-25", "brand": "Amazon", "name": "Amazon $25 (2026)", "face_value": 2500}]))
    second = cli(tmp_path, "catalog", "import", str(feed), "--program", program["program_id"])
    assert second.returncode == 0 and json.loads(second.stdout)["updated"] == 1


def test_serve_with_redis_url_uses_that_server_and_starts_no_valkey(tmp_path: Path, valkey_url: str) -> None:
    port = free_port()
    env = {**isolated_env(tmp_path), "REDIS_URL": valkey_url, "RW_JWT_SECRET": "j" * 40,
           "RW_ENCRYPTION_KEY": "k" * 43 + "="}
    server = subprocess.Popen([REWARD_WALLET, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "serve did not start"
            time.sleep(0.1)
        assert not (tmp_path / "valkey").exists(), "no embedded Valkey with REDIS_URL set"
    finally:
        os.killpg(server.pid, signal.SIGINT)
        server.wait(timeout=30)


def test_the_data_folder_is_private_and_valkey_refuses_a_client_without_its_password(tmp_path: Path) -> None:
    # What an older version left behind: a readable folder and file.
    tmp_path.chmod(0o755)
    (tmp_path / "exports").mkdir(mode=0o755)
    (tmp_path / "exports" / "old.csv").write_text("x\n")
    (tmp_path / "exports" / "old.csv").chmod(0o644)
    program = json.loads(cli(tmp_path, "program", "create", "Private", "--json").stdout)
    port = free_port()
    server = subprocess.Popen([REWARD_WALLET, "serve", "--port", str(port)], env=isolated_env(tmp_path),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, server)
        admin = {"Authorization": f"Bearer {program['admin_key']}"}
        created = httpx.post(base + "/v1/participants", json={"external_id": "e1", "display_name": "Eve"},
                             headers=admin)
        assert created.status_code == 201, created.text

        # Every file and folder the server, Valkey and SQLite made is the owner's only.
        made = {p.relative_to(tmp_path).as_posix(): p.stat().st_mode & 0o777 for p in tmp_path.rglob("*")}
        for name in ("secrets.json", "reward-wallet.sqlite3", "reward-wallet.sqlite3-wal", "reward-wallet.sqlite3-shm",
                     "valkey/valkey.conf", "valkey/appendonlydir", "exports/old.csv"):
            assert name in made, sorted(made)
        assert any(name.startswith("valkey/appendonlydir/") and ".aof" in name for name in made), sorted(made)
        assert tmp_path.stat().st_mode & 0o777 == 0o700
        assert {name: mode for name, mode in made.items() if mode not in (0o600, 0o700)} == {}

        # The embedded Valkey asks for the password kept in secrets.json; CLI commands use it.
        valkey_port = json.loads((tmp_path / "valkey" / "valkey.json").read_text())["port"]
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=valkey_port).ping()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=valkey_port, password="guess").ping()
        password = json.loads((tmp_path / "secrets.json").read_text())["valkey_password"]
        assert redis.Redis(port=valkey_port, password=password).ping()
        reconciled = cli(tmp_path, "reconcile")
        assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
    finally:
        os.killpg(server.pid, signal.SIGINT)
        server.wait(timeout=30)


def test_participants_import_reads_excel_files_and_refuses_other_encodings_in_words(tmp_path: Path) -> None:
    program = json.loads(cli(tmp_path, "program", "create", "Sheets", "--json").stdout)
    sheet = tmp_path / "people.csv"
    # Excel for Mac's "CSV UTF-8": byte-order mark, bare CR line ends, a quoted line break.
    sheet.write_bytes("\ufeffexternal_id,display_name\rm-1,\"Ana\rRuiz\"\rm-2,Zoë\r".encode("utf-8"))
    result = cli(tmp_path, "participants", "import", str(sheet), "--program", program["program_id"])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["created"] == 2
    # Excel's plain "CSV" on Windows is cp1252: refused with what to do instead of a traceback.
    sheet.write_bytes("external_id,display_name\nm-3,Zoë\n".encode("cp1252"))
    refused = cli(tmp_path, "participants", "import", str(sheet), "--program", program["program_id"])
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "not UTF-8" in refused.stderr and "CSV UTF-8" in refused.stderr
    missing = cli(tmp_path, "catalog", "import", str(tmp_path / "nope.csv"), "--program", program["program_id"])
    assert missing.returncode == 1 and "cannot read" in missing.stderr and "Traceback" not in missing.stderr
