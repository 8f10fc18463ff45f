"""Node.js peers for the interop tests: install the npm packages once, run scripts.

The npm packages pinned in ``tests/interop/node/package-lock.json`` are
installed with ``npm ci`` into a cache directory keyed by the lock file
(``$HONGYAN_INTEROP_CACHE``, default ``~/.cache/hongyan-interop``), so CI and
developers download them once. Tests skip only when Node.js or npm is not on
the machine; a failed install fails them, since it means the registry or the
lock file is broken, which a skip would hide.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).parent / "node"
INSTALL_TIMEOUT = 300
NO_NODE = ("Node.js and npm are needed for the npm peers and are not on PATH "
           "(Debian: apt-get install nodejs npm)")


def cache_root() -> Path:
    return Path(os.environ.get("HONGYAN_INTEROP_CACHE") or Path.home() / ".cache" / "hongyan-interop")


def install_node_modules() -> Path:
    """The node_modules directory holding the pinned npm peers; installs them on first use."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip(NO_NODE)
    manifest = [(NODE_DIR / name).read_bytes() for name in ("package.json", "package-lock.json")]
    key = hashlib.sha256(b"\0".join(manifest)).hexdigest()[:16]
    target = cache_root() / f"node-{key}"
    if (target / "node_modules" / ".package-lock.json").exists():
        return target / "node_modules"
    # Install beside the target and rename: a run cut short leaves no half tree behind.
    staging = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy(NODE_DIR / name, staging / name)
    try:
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=staging,
                              capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
    except subprocess.TimeoutExpired:
        shutil.rmtree(staging, ignore_errors=True)
        pytest.fail(f"npm ci of the interop peers took over {INSTALL_TIMEOUT} s")
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        pytest.fail(f"npm ci of the interop peers failed ({done.returncode}):\n{done.stderr[-2000:]}")
    try:
        staging.rename(target)
    except OSError:               # another run installed it meanwhile
        shutil.rmtree(staging, ignore_errors=True)
    return target / "node_modules"


class NodeScript:
    """A script from tests/interop/node run under node, talking JSON lines.

    stdout lines are events (``{"event": ...}``), kept in ``events``; ``send``
    writes a command line to its stdin.
    """

    def __init__(self, node_modules: Path, script: str, *args: str) -> None:
        self.node_modules = node_modules
        self.argv = [shutil.which("node") or "node", str(NODE_DIR / script), *args]
        self.events: list[dict] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task | None = None
        self._stderr: asyncio.Task | None = None

    async def start(self, ready: str, timeout: float = 10.0) -> dict:
        """Start the script and return its first event, which must be ``ready``."""
        env = {**os.environ, "NODE_PATH": str(self.node_modules)}
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        self._stderr = asyncio.create_task(self.proc.stderr.read())
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except TimeoutError:
            await self.stop()
            raise AssertionError(f"{self.argv[1]} printed nothing within {timeout} s") from None
        if not line:
            await self.proc.wait()
            err = (await self._stderr).decode(errors="replace")
            raise AssertionError(f"{self.argv[1]} exited {self.proc.returncode}:\n{err[-2000:]}")
        first = json.loads(line)
        assert first.get("event") == ready, first
        self._reader = asyncio.create_task(self._read())
        return first

    async def _read(self) -> None:
        assert self.proc is not None
        async for line in self.proc.stdout:
            self.events.append(json.loads(line))

    def of(self, event: str) -> list[dict]:
        return [e for e in self.events if e.get("event") == event]

    def send(self, **command) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.send(cmd="quit")
                await self.proc.stdin.drain()
            try:
                await asyncio.wait_for(self.proc.wait(), 3)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        for task in (self._reader, self._stderr):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def stderr_text(self) -> str:
        if self._stderr is not None and self._stderr.done() and not self._stderr.cancelled():
            return self._stderr.result().decode(errors="replace")
        return ""
