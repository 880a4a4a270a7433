"""Real `tianfu serve` processes on loopback, for tests about what holds across workers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.http import free_port


@contextmanager
def serve_workers(
    database_url: str,
    cwd: Path,
    *,
    count: int = 2,
    env: Mapping[str, str] | None = None,
) -> Iterator[list[str]]:
    """`count` separate server processes on one database; yields their base URLs once ready."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TIANFU_")}
    clean |= {"TIANFU_DATABASE_URL": database_url, "TIANFU_INDEX_POLL_INTERVAL_S": "0.5"}
    clean |= dict(env or {})
    processes: list[subprocess.Popen[bytes]] = []
    bases: list[str] = []
    try:
        for _ in range(count):
            port = free_port()
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "tianfu", "serve", "--port", str(port)],
                    env=clean,
                    cwd=cwd,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            bases.append(f"http://127.0.0.1:{port}")
        for base, process in zip(bases, processes, strict=True):
            wait_ready(base, process)
        yield bases
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_ready(base: str, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"worker {base} exited with {process.returncode}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"worker {base} not ready within {timeout_s:.0f} s")
