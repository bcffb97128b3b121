"""The demo's processes: three nodes and the hub (serving the web application), each a child
process in its own process group on 127.0.0.1, waited for until healthy and always stopped
(SIGTERM to the group, then SIGKILL after a grace period), so Ctrl-C leaves no orphan."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

STOP_GRACE_SECONDS = 10.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None


_LIBC = _libc()  # loaded here, in the parent: the child only calls a function


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to send SIGTERM when the demo process dies, even
    if it is killed with SIGKILL and cannot stop its children itself (PR_SET_PDEATHSIG)."""
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class ProcessFailed(RuntimeError):
    pass


@dataclass
class Child:
    name: str
    port: int
    health: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return ""

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.signal_group(signal.SIGTERM)
            try:
                self.proc.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self.proc.wait(STOP_GRACE_SECONDS)
        # the group may hold workers the child started: make sure none survives
        self.signal_group(signal.SIGKILL)


@dataclass
class Processes:
    logs: Path
    env: dict[str, str] = field(default_factory=dict)
    children: list[Child] = field(default_factory=list)

    def launch(
        self,
        name: str,
        args: list[str],
        port: int,
        health: str,
        env: dict[str, str] | None = None,
    ) -> Child:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{name}.log"
        full_env = {**os.environ, "PASSERELLE_LOG_LEVEL": "WARNING", **self.env, **(env or {})}
        with log.open("wb") as fh:
            proc = subprocess.Popen(
                [sys.executable, *args],
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=full_env,
                start_new_session=True,  # its own process group: Ctrl-C reaches only us
                preexec_fn=_die_with_parent,
            )
        child = Child(name, port, health, proc, log)
        self.children.append(child)
        return child

    def wait_ready(self, seconds: float = 180.0) -> None:
        deadline = time.monotonic() + seconds
        pending = list(self.children)
        with httpx.Client(timeout=2.0) as client:
            while pending:
                for child in list(pending):
                    if not child.alive():
                        raise ProcessFailed(
                            f"{child.name} exited with code {child.proc.returncode} "
                            f"(log: {child.log}):\n{child.tail()}"
                        )
                    try:
                        if client.get(child.url + child.health).status_code == 200:
                            pending.remove(child)
                    except httpx.TransportError:
                        pass
                if pending and time.monotonic() > deadline:
                    names = ", ".join(c.name for c in pending)
                    raise ProcessFailed(f"not ready after {seconds:.0f} s: {names}")
                if pending:
                    time.sleep(0.2)

    def dead(self) -> list[Child]:
        return [c for c in self.children if not c.alive()]

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()


@contextlib.contextmanager
def signals_raise_interrupt() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP end the demo the way Ctrl-C does (KeyboardInterrupt), so
    the `finally` that stops the children always runs. SIGINT is set too because a shell
    starts background jobs with it ignored, and Python then never raises KeyboardInterrupt."""

    def handler(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError, OSError):  # not the main thread
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def serve_module_args(module: str, *extra: str) -> list[str]:
    return ["-m", module, *extra]
