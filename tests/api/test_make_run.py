"""`make run` as a new user runs it: a clean copy, keys printed, an endpoint called, Ctrl-C,
and no Valkey left behind."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def clean_copy(target: Path) -> None:
    tracked = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout.split()
    for name in tracked:
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    # The copy reuses this checkout's virtualenv, so the test measures `make run`, not pip.
    (target / ".venv").symlink_to(ROOT / ".venv")
    (target / ".venv" / ".installed").touch()


def new_user_env(port: int) -> dict[str, str]:
    """A new user's shell: none of the test session's store or secret settings."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "DATABASE_URL", "RW_DATA_DIR", "RW_OPERATOR_KEY", "RW_JWT_SECRET",
                        "RW_ENCRYPTION_KEY", "RW_EMBEDDED_VALKEY", "STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET",
                        "STRIPE_API_BASE")}
    env["PORT"] = str(port)
    return env


def valkeys_under(folder: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["name", "cwd"]):
        try:
            if "valkey" in (process.info["name"] or "") and str(folder) in (process.info["cwd"] or ""):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_seeds_serves_and_stops_cleanly(tmp_path: Path) -> None:
    clean_copy(tmp_path)
    port = free_port()
    env = new_user_env(port)
    process = subprocess.Popen(["make", "run"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    output = ""
    try:
        deadline = time.monotonic() + 60
        ready = False
        while time.monotonic() < deadline and not ready:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                time.sleep(0.2)
        assert ready, "make run did not become ready"
        assert valkeys_under(tmp_path), "the embedded Valkey should run under the copy's var/"
        # Ctrl-C, as a person at the terminal would.
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    admin_key = re.search(r"Admin key:\s+(\S+)", output)
    token = re.search(r"Access token \(15m\):\s+(\S+)", output)
    assert admin_key and token, output
    assert re.search(r"Operator key .*: rwo_", output)
    assert re.search(rf"Console:\s+http://127.0.0.1:{port}/console/sign-in", output), output
    assert re.search(r"Console owner:\s+\S+@\S+", output) and re.search(r"Console password:\s+\S{10,}", output)
    assert not valkeys_under(tmp_path), "Ctrl-C must stop the embedded Valkey"
    assert (tmp_path / "var" / "valkey" / "appendonlydir").exists()


def test_the_printed_keys_work_against_the_running_demo(tmp_path: Path) -> None:
    clean_copy(tmp_path)
    port = free_port()
    env = new_user_env(port)
    runs = []
    for _ in range(2):  # a second run reuses the demo program and its data
        process = subprocess.Popen(["make", "run"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, text=True, start_new_session=True)
        lines: list[str] = []
        try:
            assert process.stdout is not None
            while True:
                line = process.stdout.readline()
                assert line, "make run ended early:\n" + "".join(lines)
                lines.append(line)
                if line.startswith("Console password"):
                    break
            text = "".join(lines)
            admin = re.search(r"Admin key:\s+(\S+)", text).group(1)  # type: ignore[union-attr]
            token = re.search(r"Access token \(15m\):\s+(\S+)", text).group(1)  # type: ignore[union-attr]
            program = re.search(r"Program:.*id=(\S+)", text).group(1)  # type: ignore[union-attr]
            deadline = time.monotonic() + 30
            while True:
                try:
                    wallet = httpx.get(f"http://127.0.0.1:{port}/v1/me/wallet",
                                       headers={"Authorization": f"Bearer {token}"}, timeout=2)
                    break
                except httpx.HTTPError:
                    assert time.monotonic() < deadline
                    time.sleep(0.2)
            own = httpx.get(f"http://127.0.0.1:{port}/v1/program", headers={"Authorization": f"Bearer {admin}"})
            # The printed console sign-in works: the console URL, the owner's email and password.
            console = re.search(r"Console:\s+(\S+)", text).group(1)  # type: ignore[union-attr]
            owner = re.search(r"Console owner:\s+(\S+)", text).group(1)  # type: ignore[union-attr]
            password = re.search(r"Console password:\s+(\S+)", text).group(1)  # type: ignore[union-attr]
            assert console == f"http://127.0.0.1:{port}/console/sign-in"
            with httpx.Client() as browser:  # keeps the sign-in form's cookie, as a browser does
                form = browser.get(console)
                token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
                signed = browser.post(console, data={"email": owner, "password": password, "csrf": token})
            assert signed.status_code == 303 and "rw_console" in signed.cookies, signed.text
            runs.append((program, wallet.json(), own.status_code, admin))
        finally:
            os.killpg(process.pid, signal.SIGINT)
            process.wait(timeout=30)
    (first_program, first_wallet, first_status, first_admin), (second_program, second_wallet, _, second_admin) = runs
    assert first_status == 200
    assert first_admin == second_admin, "each make run should print the demo's one admin key, not add another"
    assert first_program == second_program
    assert first_wallet["available"] == second_wallet["available"] == 500  # the welcome grant, once
