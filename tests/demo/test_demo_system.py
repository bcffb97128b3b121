"""`passerelle demo` as a user runs it: real processes, real HTTP on 127.0.0.1.

`--check` sets everything up (FHIR -> ingest for three hospitals, three nodes, hub, web,
seeded history), exercises it and exits 0; Ctrl-C on a running demo stops every process it
started (no orphan)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

SMALL = ["--persons", "40", "--requests", "20"]


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PASSERELLE_")}
    return {**env, "PASSERELLE_DATA_DIR": str(data_dir), "COLUMNS": "200"}


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # the demo stops its children
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_demo_check_exercises_the_whole_system(tmp_path):
    data_dir = tmp_path / "data"
    proc = subprocess.run(
        [sys.executable, "-m", "passerelle", "demo", "--check", *SMALL],
        env=_env(data_dir),
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "7/7 checks passed" in out
    for name in ("feasibility", "request", "catalogue", "study", "observatory", "audit"):
        assert f"ok     {name}" in out
    assert "passerelle-demo" in out  # the password is printed with the logins
    assert "reviewer.chu-nord@" in out
    root = data_dir / "demo"
    for node in ("chu-nord", "chu-sud", "chu-ouest"):
        assert (root / node / "fhir" / "Patient.ndjson").is_file()
        assert (root / node / "cdm.duckdb").is_file()
        assert (
            not (root / node / "quarantine.ndjson").exists()
            or not (root / node / "quarantine.ndjson").read_text()
        )


def test_ctrl_c_stops_every_process(tmp_path):
    data_dir = tmp_path / "data"
    log = tmp_path / "demo.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "passerelle", "demo", *SMALL, "--port", "0"],
            env=_env(data_dir),
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 600
        url = None
        while time.monotonic() < deadline and proc.poll() is None:
            for line in log.read_text().splitlines():
                if "Passerelle demo: http" in line:
                    url = line.split("Passerelle demo: ", 1)[1].split()[0]
            if url:
                break
            time.sleep(0.5)
        assert url, log.read_text()[-4000:]
        assert httpx.get(url + "/observatory", timeout=60).status_code == 200
        children = _children(proc.pid)
        assert len(children) >= 4  # three nodes and the hub (and multiprocessing's tracker)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(pid) for pid in children):
            time.sleep(0.2)
        assert [pid for pid in children if _alive(pid)] == []
        assert "stopping" in log.read_text()
    finally:
        _stop(proc)


def test_ctrl_c_while_building_leaves_no_worker(tmp_path):
    log = tmp_path / "demo.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "passerelle", "demo", "--persons", "400", "--port", "0"],
            env=_env(tmp_path / "data"),
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and "history: replaying" not in log.read_text():
            assert proc.poll() is None, log.read_text()[-4000:]
            time.sleep(0.2)
        workers = _children(proc.pid)
        assert workers, "the hospitals are built in worker processes"
        proc.send_signal(signal.SIGINT)
        # What matters is that no worker outlives the demo. Under heavy load the interrupt can
        # land before the demo's own handler is back in place, ending it by the signal itself.
        assert proc.wait(120) in (0, 130, -signal.SIGINT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
            time.sleep(0.2)
        assert [pid for pid in workers if _alive(pid)] == []
        assert "Passerelle demo: http" not in log.read_text()
    finally:
        _stop(proc)


def test_children_die_with_a_killed_demo(tmp_path):
    """Even SIGKILL (which the demo cannot catch) leaves no server running."""
    log = tmp_path / "demo.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "passerelle", "demo", *SMALL, "--port", "0"],
            env=_env(tmp_path / "data"),
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and "Passerelle demo: http" not in log.read_text():
            assert proc.poll() is None, log.read_text()[-4000:]
            time.sleep(0.5)
        children = _children(proc.pid)
        assert len(children) >= 4
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(pid) for pid in children):
            time.sleep(0.2)
        assert [pid for pid in children if _alive(pid)] == []
    finally:
        _stop(proc)
