"""``server = "auto"``: the first command starts a background server, later ones use it, it stops by itself
when idle and on ``genimg serve --stop``; what it makes equals a local run's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
from PIL import Image


def _genimg(*args, env):
    return subprocess.run([sys.executable, "-m", "genimg", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except (ProcessLookupError, FileNotFoundError):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow  # three fresh processes and an idle wait; `serve --stop` on a real process stays in the default run
def test_auto_starts_one_server_later_commands_use_it_and_it_exits_when_idle(cli, tmp_path, monkeypatch):
    state = tmp_path / "state"
    env = {**os.environ, "GENIMG_STATE_DIR": str(state), "GENIMG_SERVER": "auto",
           "GENIMG_SERVER_IDLE_EXIT": "0.1"}  # 6 s: long enough for the second command to arrive first
    first = _genimg("txt2img", "a red circle on a blue background", "--seed", "3", "--preset", "cpu", "-o", str(tmp_path / "a.png"),
                    env=env)
    assert first.returncode == 0, first.stderr
    assert "started a genimg server in the background" in first.stderr
    runtime = state / "server.json"
    address = json.loads(runtime.read_text())
    assert oct(runtime.stat().st_mode & 0o777) == "0o600" and address["token"]
    assert httpx.get(f"{address['url']}/v1/jobs").status_code == 401  # another user of the machine gets nothing
    second = _genimg("txt2img", "a red circle on a blue background", "--seed", "3", "--preset", "cpu", "-o", str(tmp_path / "b.png"),
                     env=env)
    assert second.returncode == 0, second.stderr
    assert "started" not in second.stderr and json.loads(runtime.read_text())["pid"] == address["pid"]
    try:
        monkeypatch.delenv("GENIMG_SERVER", raising=False)
        assert cli("txt2img", "a red circle on a blue background", "--seed", "3", "--preset", "cpu", "--local",
                   "-o", str(tmp_path / "c.png")).code == 0
        local = np.asarray(Image.open(tmp_path / "c.png"))
        for name in ("a.png", "b.png"):
            assert np.array_equal(np.asarray(Image.open(tmp_path / name)), local)
        assert _gone(address["pid"], within=30), "the idle server did not exit"
    finally:
        if not _gone(address["pid"], within=0):
            os.kill(address["pid"], 9)
    assert not runtime.exists()
    assert "no work for 0.1 minutes; stopping" in (state / "serve.log").read_text()


def test_serve_stop_ends_the_server_this_machine_runs(cli, tmp_path, monkeypatch):
    state = tmp_path / "state"
    monkeypatch.setenv("GENIMG_STATE_DIR", str(state))
    assert cli("serve", "--stop").out.strip() == "genimg serve: none is running"
    process = subprocess.Popen([sys.executable, "-m", "genimg", "serve", "--port", "0"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "GENIMG_STATE_DIR": str(state)})
    try:
        assert process.stdout.readline().startswith("serving on http://127.0.0.1:")
        result = cli("serve", "--stop")
        assert result.out.strip() == f"genimg serve: stopped the server (process {process.pid})"
        assert not (state / "server.json").exists()
        assert "stopped; 0 jobs done" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.parametrize("value", ["soon", "-1"])
def test_a_bad_idle_time_is_one_line_naming_the_key(cli, value, monkeypatch):
    monkeypatch.setenv("GENIMG_SERVER_IDLE_EXIT", value)
    result = cli("config", "show")
    assert result.code == 2
    assert "server_idle_exit" in result.err and "must be a number of minutes" in result.err
    assert len(result.err.strip().splitlines()) == 1
