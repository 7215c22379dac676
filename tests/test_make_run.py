"""`make run` serves the demo club: started exactly as a newcomer would start it."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from buyersclub import demo

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 90


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop_group(process: subprocess.Popen) -> None:
    """Stop make and everything it started (gunicorn and its workers)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is None:
            time.sleep(0.2)
            continue
        try:
            os.killpg(process.pid, 0)  # anyone left in the group?
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


class Served:
    def __init__(self, url: str, log: Path, process: subprocess.Popen):
        self.url = url
        self.log = log
        self.process = process

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def served(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'run.sqlite3'}",
    }
    log = tmp_path / "make-run.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            ["make", "run"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
            stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )
    served = Served(url, log, process)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"`make run` exited with {process.returncode}:\n{served.output}")
            try:
                if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or a worker still booting
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"`make run` did not answer within {STARTUP_SECONDS} s:\n{served.output}")
            time.sleep(0.5)
        yield served
    finally:
        stop_group(process)


def test_make_run_serves_the_demo_club(served):
    health = requests.get(f"{served.url}/healthz", timeout=10)
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}

    sign_in_page = requests.get(f"{served.url}/sign-in", timeout=10)
    assert sign_in_page.status_code == 200
    assert 'name="email"' in sign_in_page.text and 'name="password"' in sign_in_page.text

    output = served.output
    assert served.url in output
    assert demo.ADMIN_EMAIL in output and demo.DEMO_PASSWORD in output
    assert demo.MEMBER_EMAIL in output and demo.FINANCE_EMAIL in output

    # The demo data is there: the printed admin sign-in works through the real form.
    with requests.Session() as browser:
        form = browser.get(f"{served.url}/sign-in", timeout=10).text
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form)
        assert token, form
        response = browser.post(
            f"{served.url}/sign-in",
            data={"csrf_token": token.group(1), "email": demo.ADMIN_EMAIL,
                  "password": demo.DEMO_PASSWORD},
            timeout=10,
        )
        assert response.status_code == 200
        assert response.url == f"{served.url}/"
        assert "Robin Administrator" in response.text
        assert "Sign out" in response.text

    # Stopping the process group leaves nothing serving.
    stop_group(served.process)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{served.url}/healthz", timeout=2)
