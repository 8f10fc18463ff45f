"""``hongyan bench``: measure the platform from the request to the pushed report.

By default it builds a throw-away installation in a temporary folder: a
config (SQLite there, free ports), the carrier simulator as its own process
(``hongyan simulate``), ``hongyan init --demo``, a top-up big enough for the
run, the demo channel opened up (high mps, wide window, several links) and
the demo account's report URL pointed at a sink inside this process; then
``hongyan serve``. It sends the messages through a front door, waits until
the sink has every report, prints the figures and stops what it started.

With ``--url`` and ``--key`` it drives a server that is already running
instead. The sink then has to be reachable at the account's report URL:
either give ``--sink-port`` matching the URL the account already has, or
``--set-report-url --config PATH`` to point it at the sink (through
``hongyan account set``).

``--compare-rules`` builds two such installations per round, one with the demo
account's rules off and one with them on, and runs both benches at the same
time, so that the ratio of their figures does not move with the machine's load.

Front doors: each dialect builds the i-th request of a run (``HttpDoor``);
a door that is not plain HTTP (CMPP or SMPP submit) overrides ``drive`` and
returns the same ``LoadResult``.
"""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import click
import orjson

from hongyan.loadgen import Load, LoadResult, Request, fetch
from hongyan.sink import Sink

DEFAULT_CONTENT = "【鸿雁】您的验证码是 246810，5 分钟内有效。"
# Prefixes whose every 8-digit tail is a valid mobile number (CMCC 138/139, Unicom 186, Telecom 189).
PREFIXES = ("138", "139", "186", "189")
PROGRESS_EVERY = 1.0
STATS_EVERY = 0.25


# -- what is sent ---------------------------------------------------------------

class Numbers:
    """Distinct valid mobile numbers: the i-th of a run, from a random start so runs differ."""

    def __init__(self, seed: int | None = None) -> None:
        self.base = random.Random(seed).randrange(10 ** 8)

    def __getitem__(self, i: int) -> str:
        return PREFIXES[i % len(PREFIXES)] + f"{(self.base + i // len(PREFIXES)) % 10 ** 8:08d}"


@dataclass
class Target:
    """The server under test, as the load sees it."""
    host: str
    port: int
    key: str
    secret: str | None = None               # the account's API secret: checks push signatures
    simulator: tuple[str, int] | None = None  # the simulator's control address, for /stats
    username: str = "demo"                  # the vendor dialects log in by name and secret
    org: str = "100001"


class HttpDoor:
    """A front door over HTTP: the requests of a run, and which answers mean "accepted"."""

    name = ""

    def __init__(self, target: Target, messages: int, recipients: int, content: str,
                 numbers: Numbers) -> None:
        self.target = target
        self.messages = messages
        self.recipients = max(1, recipients)
        self.content = content
        self.numbers = numbers
        self.requests = -(-messages // self.recipients)
        self.accepted_requests = 0
        self.accepted_messages = 0
        self.refusals: Counter = Counter()   # (status, code) -> requests

    def phones(self, i: int) -> list[str]:
        start = i * self.recipients
        return [self.numbers[j] for j in range(start, min(start + self.recipients, self.messages))]

    def build(self, i: int) -> Request:
        raise NotImplementedError

    def on_response(self, i: int, status: int, body: bytes) -> None:
        if status == 200:
            self.accepted_requests += 1
            self.accepted_messages += min(self.recipients, self.messages - i * self.recipients)
        else:
            self.refusals[(status, self.refusal_code(body))] += 1

    @staticmethod
    def refusal_code(body: bytes) -> str:
        try:
            return str(orjson.loads(body).get("code", ""))
        except (orjson.JSONDecodeError, AttributeError):
            return ""

    def start(self, concurrency: int) -> Load:
        return Load(self.target.host, self.target.port, self.build, concurrency=concurrency,
                    total=self.requests, on_response=self.on_response)


class NativeDoor(HttpDoor):
    """``POST /v1/messages`` with a Bearer key."""

    name = "native"

    def build(self, i: int) -> Request:
        phones = self.phones(i)
        to = phones[0] if len(phones) == 1 else phones
        headers = {"Authorization": f"Bearer {self.target.key}", "Content-Type": "application/json"}
        return "POST", "/v1/messages", headers, orjson.dumps({"to": to, "content": self.content})


class FormDoor(HttpDoor):
    """A vendor dialect: a form POST, accepted when the answer says so (always HTTP 200)."""

    path = ""

    def fields(self, i: int, phones: list[str]) -> dict[str, str]:
        raise NotImplementedError

    def accepted(self, body: bytes) -> bool:
        raise NotImplementedError

    def build(self, i: int) -> Request:
        body = urlencode(self.fields(i, self.phones(i))).encode()
        return "POST", self.path, {"Content-Type": "application/x-www-form-urlencoded"}, body

    def on_response(self, i: int, status: int, body: bytes) -> None:
        if status == 200 and self.accepted(body):
            self.accepted_requests += 1
            self.accepted_messages += min(self.recipients, self.messages - i * self.recipients)
        else:
            self.refusals[(status, body[:40].decode("utf-8", "replace"))] += 1


class QmsgDoor(FormDoor):
    name, path = "qmsg", "/sendSms.do"

    def fields(self, i, phones):
        return {"entid": self.target.org, "uid": self.target.username, "pwd": self.target.secret,
                "mobs": ",".join(phones), "msg": self.content}

    def accepted(self, body):
        return body.startswith(b"0\n")


class Kxt3Door(FormDoor):
    name, path = "kxt3", "/webservice/http/service"

    def fields(self, i, phones):
        # 18 digits, never reused: the run's start in ms, then the request's number.
        ts = f"{self.started:013d}{i:05d}"
        pwd = hashlib.md5((self.target.secret + ts).encode()).hexdigest()
        return {"op": "sendSm", "message": orjson.dumps({
            "cid": self.target.org, "uid": self.target.username, "pwd": pwd, "timestamp": ts,
            "mobiles": phones, "content": self.content}).decode()}

    def accepted(self, body):
        return body.startswith(b'{"stateCode":0,')

    @property
    def started(self) -> int:
        if not hasattr(self, "_started"):
            self._started = int(time.time() * 1000)
        return self._started


class HttpBatchDoor(FormDoor):
    name, path = "httpbatch", "/msg/HttpBatchSendSM"

    def fields(self, i, phones):
        return {"account": self.target.username, "pswd": self.target.secret, "mobile": ",".join(phones),
                "msg": self.content, "needstatus": "true"}

    def accepted(self, body):
        return body.split(b"\n", 1)[0].endswith(b",0")


class QxtDoor(FormDoor):
    name, path = "qxt", "/qxt/smssenderv2"

    def fields(self, i, phones):
        return {"user": self.target.username, "password": hashlib.md5(self.target.secret.encode()).hexdigest(),
                "tele": ",".join(phones), "msg": self.content}

    def accepted(self, body):
        return body.startswith(b"ok:")


class K1680Door(FormDoor):
    name, path = "k1680", "/sendXSms.do"

    def fields(self, i, phones):
        return {"username": self.target.username, "password": self.target.secret, "mobile": ",".join(phones),
                "content": self.content, "productid": BENCH_PRODUCT}

    def accepted(self, body):
        return body.startswith(b"1,")


# The product the k1680 door names (its interface requires one); the bench creates it.
BENCH_PRODUCT = "900001"
DOORS: dict[str, type[HttpDoor]] = {d.name: d for d in (NativeDoor, QmsgDoor, Kxt3Door, HttpBatchDoor,
                                                       QxtDoor, K1680Door)}


# -- the installation under test ---------------------------------------------------

def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def coerce_options(pairs: tuple[str, ...]) -> dict:
    """``KEY=VALUE`` config overrides, typed like the setting they change."""
    from hongyan.config import Settings

    defaults = Settings()
    names = {f.name for f in dataclasses.fields(Settings)}
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or key not in names:
            raise click.BadParameter(f"{pair!r}: expected KEY=VALUE with a setting name as KEY", param_hint="-o")
        current = getattr(defaults, key)
        try:
            if isinstance(current, bool):
                out[key] = value.lower() in ("1", "true", "yes", "on")
            elif isinstance(current, int):
                out[key] = int(value)
            elif isinstance(current, float):
                out[key] = float(value)
            elif isinstance(current, list):
                out[key] = [v.strip() for v in value.split(",") if v.strip()]
            else:
                out[key] = value
        except ValueError:
            raise click.BadParameter(f"{pair!r}: {key} takes a {type(current).__name__}",
                                     param_hint="-o") from None
    return out


def _child_env() -> dict[str, str]:
    # HONGYAN_* in the caller's environment would override the bench's config.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HONGYAN_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class LocalStack:
    """Simulator and server processes around a fresh config in ``workdir``."""

    def __init__(self, workdir: Path, *, report_delay: float, fail_rate: float, options: dict,
                 channel: dict, echo=click.echo, rules: bool = False, concurrency: int = 64,
                 content: str = DEFAULT_CONTENT) -> None:
        self.workdir = workdir
        self.rules, self.concurrency, self.content = rules, concurrency, content
        self.config = workdir / "hongyan.toml"
        self.report_delay = report_delay
        self.fail_rate = fail_rate
        self.options = options
        self.channel = channel
        self.echo = echo
        self.procs: list[tuple[str, subprocess.Popen, Path]] = []
        self.http_port = self.sim_port = self.control_port = self.cmpp_port = self.smpp_port = 0
        self.wait_channels = True            # False when the server runs no dispatcher

    def cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "hongyan.cli", "--config", str(self.config), *args]

    async def run_cli(self, *args: str) -> str:
        def run() -> subprocess.CompletedProcess:
            return subprocess.run(self.cli(*args), capture_output=True, text=True, timeout=180,
                                  env=_child_env(), cwd=self.workdir)
        done = await asyncio.to_thread(run)
        if done.returncode != 0:
            raise click.ClickException(f"`hongyan {' '.join(args)}` failed ({done.returncode}):\n"
                                       f"{(done.stdout + done.stderr).strip()[-2000:]}")
        return done.stdout

    def spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log_path = self.workdir / f"{name}.log"
        with open(log_path, "wb") as log:
            # Its own session: a Ctrl-C reaches the bench, which then stops it in order.
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=_child_env(),
                                    cwd=self.workdir, start_new_session=True)
        self.procs.append((name, proc, log_path))
        return proc

    def cpu_seconds(self, name: str = "server") -> float | None:
        """CPU time (user + system, all threads) a process of the stack has used so far.

        On a shared machine throughput moves with the neighbours' load; the CPU a
        message costs the server does not, so comparing two runs is fairer on it."""
        for n, proc, _ in self.procs:
            if n == name and proc.poll() is None:
                try:
                    fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    return None
                return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return None

    async def server_counters(self) -> dict:
        """What the server has spent so far: CPU seconds, and group commits and jobs (from /healthz)."""
        health = await _get_json("127.0.0.1", self.http_port, "/healthz")
        return {"cpu": self.cpu_seconds(), "writer": None if health is None else health.get("writer")}

    def log_tail(self, name: str, lines: int = 30) -> str:
        for n, _, path in self.procs:
            if n == name and path.exists():
                return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    async def start(self, sink_url: str, messages: int, parts: int) -> Target:
        from hongyan.config import write_config
        from hongyan.core.secrets import new_fernet_key

        self.http_port, self.sim_port, self.control_port, self.cmpp_port, self.smpp_port = free_ports(5)
        values = {"database_url": f"sqlite:///{self.workdir / 'bench.db'}", "secret_key": new_fernet_key(),
                  "http_host": "127.0.0.1", "http_port": self.http_port,
                  # The session front doors on free loopback ports, so runs never clash.
                  "server_host": "127.0.0.1", "cmpp_server_port": self.cmpp_port, "smpp_server_port": self.smpp_port,
                  # The simulator runs as its own process, so its CPU shows apart from the server's.
                  "simulator": False, "simulator_port": self.sim_port,
                  "simulator_report_delay": self.report_delay, **self.options}
        write_config(str(self.config), values)

        sim = self.spawn("simulator", self.cli(
            "simulate", "--port", str(self.sim_port), "--control-port", str(self.control_port),
            "--report-delay", str(self.report_delay), "--fail-rate", str(self.fail_rate)))
        self.echo(f"setting up in {self.workdir}")
        await self.run_cli("init", "--demo")
        await self.run_cli("account", "topup", "demo", str(max(1, messages * parts)), "--note", "bench")
        await self.run_cli("product", "create", BENCH_PRODUCT, "bench", "--price", "1")
        await self.run_cli("product", "subscribe", "demo", BENCH_PRODUCT)
        await self.run_cli("account", "topup", "demo", str(max(1, messages * parts)), "--product", BENCH_PRODUCT,
                           "--note", "bench")
        await self.run_cli("account", "set", "demo", "--report-url", sink_url)
        self.apply_rules()
        await self.run_cli("channel", "set", "simulator", *[a for k, v in self.channel.items()
                                                             for a in (f"--{k}", str(v))])
        await wait_until(lambda: _get_json("127.0.0.1", self.control_port, "/stats"), 30,
                         "the simulator's control port", proc=sim, tail=lambda: self.log_tail("simulator"))
        key, secret = self.demo_key()
        server = self.spawn("server", self.cli("serve"))
        health = await wait_until(lambda: _get_json("127.0.0.1", self.http_port, "/healthz"), 90,
                                  "the server's /healthz", proc=server, tail=lambda: self.log_tail("server"))
        if self.wait_channels:
            await self._wait_channels(health)
        return Target("127.0.0.1", self.http_port, key, secret, ("127.0.0.1", self.control_port))

    def apply_rules(self) -> None:
        """The demo account's rules: all on (``--rules``) or none in the way of the load."""
        from hongyan import bench_rules
        from hongyan.config import load
        from hongyan.store.db import make_engine

        s = load(str(self.config))
        engine = make_engine(s.resolved_database_url(), synchronous=s.sqlite_synchronous, pool_size=1)
        try:
            loaded = bench_rules.apply(engine, "demo", self.content, rules_on=self.rules,
                                       concurrency=self.concurrency)
        finally:
            engine.dispose()
        self.echo("rules       " + ", ".join(f"{k} {v}" for k, v in loaded.items()))

    def demo_key(self) -> tuple[str, str]:
        """The demo account's Bearer key and secret, the way ``hongyan demo`` reads them."""
        from sqlalchemy import select

        from hongyan.config import load
        from hongyan.core.secrets import Cipher, bearer_key
        from hongyan.store.db import make_engine
        from hongyan.store.tables import accounts

        s = load(str(self.config))
        engine = make_engine(s.resolved_database_url(), synchronous=s.sqlite_synchronous, pool_size=1)
        try:
            with engine.connect() as conn:
                row = conn.execute(select(accounts.c.key_id, accounts.c.secret_enc)
                                   .where(accounts.c.username == "demo")).one()
        finally:
            engine.dispose()
        secret = Cipher(s.secret_key).decrypt(row.secret_enc)
        return bearer_key(row.key_id, secret), secret

    async def _wait_channels(self, health: dict, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            channels = health.get("channels") or []
            if channels and all(c.get("connected") for c in channels):
                return
            await asyncio.sleep(0.2)
            health = await _get_json("127.0.0.1", self.http_port, "/healthz") or health
        self.echo(f"warning: channels not all connected after {timeout:.0f} s: {health.get('channels')}")

    async def stop(self) -> None:
        # The server first, so it does not spend its shutdown reconnecting to a gone simulator.
        for name, proc, _ in reversed(self.procs):
            await stop_process(proc)
        self.procs.clear()


async def stop_process(proc: subprocess.Popen, grace: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while proc.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    if proc.poll() is None:
        proc.kill()
        await asyncio.to_thread(proc.wait, 5)


async def _get_json(host: str, port: int, path: str) -> dict | None:
    try:
        msg = await fetch(host, port, "GET", path, timeout=5)
    except (OSError, TimeoutError, ValueError):
        return None
    if msg.status != 200:
        return None
    try:
        return orjson.loads(msg.body)
    except orjson.JSONDecodeError:
        return None


async def wait_until(probe, timeout: float, what: str, proc: subprocess.Popen | None = None, tail=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise click.ClickException(f"{what}: the process exited ({proc.returncode}):\n"
                                       f"{tail() if tail else ''}")
        value = await probe()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise click.ClickException(f"{what}: no answer within {timeout:.0f} s\n{tail() if tail else ''}")


# -- watching the run ---------------------------------------------------------------

@dataclass
class Watch:
    """Simulator counters sampled during the run, and the progress line."""
    simulator: tuple[str, int] | None
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (wall time, submits, reports)

    async def sample(self) -> None:
        if self.simulator is None:
            return
        stats = await _get_json(*self.simulator, "/stats")
        if stats:
            self.samples.append((time.time(), int(stats.get("submits", 0)), int(stats.get("reports_sent", 0))))

    def submits(self) -> int:
        if len(self.samples) < 1:
            return 0
        return self.samples[-1][1] - self.samples[0][1]

    def submit_window(self, start: float) -> tuple[int, float]:
        """Submits during the run, and the seconds from ``start`` until the last one was seen."""
        if len(self.samples) < 2:
            return 0, 0.0
        base, final = self.samples[0][1], self.samples[-1][1]
        end = next(t for t, s, _ in self.samples if s == final)
        return final - base, max(end - start, 0.0)

    def reports_sent(self) -> int:
        if len(self.samples) < 2:
            return 0
        return self.samples[-1][2] - self.samples[0][2]


async def watch(door: HttpDoor, load: Load, sink: Sink, w: Watch, stop: asyncio.Event, echo,
                progress: bool = True) -> None:
    """Sample the simulator through the run; with ``progress``, print a line a second."""
    tty = progress and sys.stdout.isatty()
    started = time.monotonic()
    next_line = started + PROGRESS_EVERY
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), STATS_EVERY)
        except TimeoutError:
            pass
        await w.sample()
        now = time.monotonic()
        if progress and (now >= next_line or stop.is_set()):
            next_line = now + PROGRESS_EVERY
            unit = "" if door.recipients == 1 else " requests"
            line = (f"  {now - started:5.0f} s  sent {load.sent}{unit}  accepted {door.accepted_messages}"
                    f"  submits {w.submits()}  reports {sink.total('report')}")
            echo(("\r" + line + "   ") if tty else line, nl=not tty)
    if tty:
        echo("")


# -- the run -------------------------------------------------------------------------

def machine() -> dict:
    return {"cores": os.cpu_count(), "python": platform.python_version(),
            "implementation": platform.python_implementation(), "platform": platform.platform()}


def summarize(door: HttpDoor, res: LoadResult, sink: Sink, w: Watch, reports_complete: bool) -> dict:
    sent_window = max(res.last_end - res.first_start, 1e-9)
    submits, submit_secs = w.submit_window(res.first_start)
    reports = sink.total("report")
    by_status = dict(sink.counts.get("report", {}))
    e2e = max(sink.last_at - res.first_start, 1e-9) if reports else 0.0
    errors = {f"{status} {code}".strip(): n for (status, code), n in door.refusals.items()}
    errors.update({k: n for k, n in res.errors.items()})
    return {
        "dialect": door.name, "messages": door.messages, "recipients_per_request": door.recipients,
        "requests": door.requests, "answered": res.answered,
        "accepted_requests": door.accepted_requests, "accepted_messages": door.accepted_messages,
        "load_seconds": round(sent_window, 3),
        "accepted_requests_per_s": round(door.accepted_requests / sent_window, 1),
        "accepted_messages_per_s": round(door.accepted_messages / sent_window, 1),
        "latency_ms": {"p50": round(res.percentile(0.50) * 1000, 2), "p99": round(res.percentile(0.99) * 1000, 2),
                       "max": round(max(res.latencies, default=0.0) * 1000, 2)},
        "connections": res.connections,
        "errors": errors,
        "simulator": None if w.simulator is None else {
            "submits": submits, "seconds": round(submit_secs, 3),
            "submits_per_s": round(submits / submit_secs, 1) if submit_secs else 0.0,
            "reports_sent": w.reports_sent()},
        "reports": {"received": reports, "delivered": by_status.get("delivered", 0),
                    "failed": by_status.get("failed", 0),
                    "other": {k: v for k, v in by_status.items() if k not in ("delivered", "failed")},
                    "repeated": sink.duplicates, "rejected_pushes": sink.rejected, "bad_pushes": sink.bad,
                    "complete": reports_complete},
        "end_to_end": {"seconds": round(e2e, 3), "messages_per_s": round(reports / e2e, 1) if e2e else 0.0},
    }


def server_costs(before: dict, after: dict, messages: int) -> dict:
    """The server's CPU a message and its group commits over the run, from two ``server_counters``."""
    out: dict = {}
    if before["cpu"] is not None and after["cpu"] is not None and messages:
        spent = after["cpu"] - before["cpu"]
        out["server_cpu"] = {"seconds": round(spent, 2), "us_per_message": round(spent / messages * 1e6, 1)}
    if before["writer"] and after["writer"]:
        commits = after["writer"]["commits"] - before["writer"]["commits"]
        jobs = after["writer"]["jobs"] - before["writer"]["jobs"]
        out["writer"] = {"commits": commits, "jobs": jobs,
                         "jobs_per_commit": round(jobs / commits, 1) if commits else 0.0}
    return out


def render(r: dict, echo) -> None:
    lat = r["latency_ms"]
    cpu = r.get("server_cpu")
    echo(f"requests    {r['answered']} of {r['requests']} answered, {r['accepted_requests']} accepted "
         f"in {r['load_seconds']:.2f} s over {r['connections']} connection(s)")
    echo(f"accepted    {r['accepted_requests_per_s']:.0f} requests/s, "
         f"{r['accepted_messages_per_s']:.0f} recipient-messages/s")
    echo(f"latency     p50 {lat['p50']:.1f} ms   p99 {lat['p99']:.1f} ms   max {lat['max']:.1f} ms")
    errs = r["errors"]
    echo("errors      " + (", ".join(f"{k}: {v}" for k, v in sorted(errs.items())) if errs else "none"))
    sim = r["simulator"]
    if sim is not None:
        echo(f"simulator   {sim['submits']} submits in {sim['seconds']:.2f} s: {sim['submits_per_s']:.0f} submits/s; "
             f"{sim['reports_sent']} reports sent")
    rep = r["reports"]
    other = ", ".join(f"{k} {v}" for k, v in rep["other"].items())
    echo(f"reports     {rep['received']} received: delivered {rep['delivered']}, failed {rep['failed']}"
         f"{', ' + other if other else ''}; {rep['repeated']} repeated, {rep['rejected_pushes']} pushes "
         f"with a bad signature{'' if rep['complete'] else '  (INCOMPLETE: timed out)'}")
    e2e = r["end_to_end"]
    echo(f"end to end  {e2e['messages_per_s']:.0f} messages/s ({rep['received']} in {e2e['seconds']:.2f} s, "
         f"first request sent to last report received)")
    if cpu is not None:
        echo(f"server cpu  {cpu['seconds']:.2f} s: {cpu['us_per_message']:.0f} µs a message (all its threads, "
             f"first request to last report)")
    wr = r.get("writer")
    if wr is not None:
        echo(f"writer      {wr['commits']} commits of {wr['jobs']} jobs: {wr['jobs_per_commit']:.1f} jobs a commit "
             f"(first request to last report)")


@dataclass
class BenchOptions:
    messages: int
    recipients: int
    concurrency: int
    dialect: str
    content: str
    url: str | None
    key: str | None
    secret: str | None
    simulator_stats: str | None
    sink_host: str
    sink_port: int
    set_report_url: bool
    config: str | None
    report_delay: float
    fail_rate: float
    timeout: float | None
    keep: bool
    options: dict
    channel: dict
    rules: bool = False
    front: str = "http"          # or a session front door: cmpp
    connections: int = 1         # sessions of a session front door
    front_window: int = 16       # unanswered submits per session
    progress: bool = True        # False: no line a second (two benches side by side would mix theirs)


async def run_bench(o: BenchOptions, echo=click.echo, ready=None) -> dict:
    """One bench; ``ready`` (an async callable), if given, is awaited once the stack is up,
    just before the load starts, so that benches run side by side start their loads together."""
    from hongyan.domain.segments import count_parts

    m = machine()
    echo(f"machine     {m['cores']} cores, {m['implementation']} {m['python']}, {m['platform']}")
    parts = count_parts(o.content)
    workdir: Path | None = None
    stack: LocalStack | None = None
    sink = Sink(o.sink_host, o.sink_port)
    stop = asyncio.Event()
    watcher: asyncio.Task | None = None
    try:
        await sink.start()
        if o.url is None:
            workdir = Path(tempfile.mkdtemp(prefix="hongyan-bench-"))
            stack = LocalStack(workdir, report_delay=o.report_delay, fail_rate=o.fail_rate,
                               options=o.options, channel=o.channel, echo=echo, rules=o.rules,
                               concurrency=o.concurrency, content=o.content)
            target = await stack.start(sink.url, o.messages, parts)
        else:
            target = await remote_target(o, sink, echo)
        sink.secret = target.secret
        door = DOORS[o.dialect](target, o.messages, o.recipients, o.content, Numbers())
        echo(f"bench       {door.name}: {o.messages} messages, {door.recipients} recipient(s)/request, "
             f"{door.requests} requests, concurrency {o.concurrency}, {parts} part(s) each, "
             f"reports to {sink.url}")
        if ready is not None:
            await ready()
        w = Watch(target.simulator)
        await w.sample()
        before = await stack.server_counters() if stack is not None else None
        load = door.start(o.concurrency)
        watcher = asyncio.create_task(watch(door, load, sink, w, stop, echo, o.progress))
        res = await load.run()
        timeout = o.timeout if o.timeout is not None else 60 + door.accepted_messages / 200
        complete = await sink.wait_for(door.accepted_messages, timeout)
        after = await stack.server_counters() if stack is not None else None
        stop.set()
        await watcher
        await w.sample()
        result = {"machine": m, **summarize(door, res, sink, w, complete)}
        if before is not None and after is not None:
            result.update(server_costs(before, after, door.accepted_messages))
        render(result, echo)
        if stack is not None and not complete:
            echo(f"server log tail:\n{stack.log_tail('server', 15)}")
        return result
    finally:
        stop.set()
        if watcher is not None and not watcher.done():
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        if stack is not None:
            await stack.stop()
        await sink.stop()
        if workdir is not None:
            if o.keep:
                echo(f"kept {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)


async def remote_target(o: BenchOptions, sink: Sink, echo) -> Target:
    parts = urlsplit(o.url)
    if parts.scheme != "http" or not parts.hostname:
        raise click.UsageError("--url must be http://HOST:PORT")
    if not o.key:
        raise click.UsageError("--url needs --key (the account's Bearer API key)")
    host, port = parts.hostname, parts.port or 80
    sim = None
    if o.simulator_stats:
        s = urlsplit(o.simulator_stats)
        sim = (s.hostname or "127.0.0.1", s.port or 80)
    if o.set_report_url:
        if not o.config:
            raise click.UsageError("--set-report-url needs --config (the server's config file)")
        msg = await fetch(host, port, "GET", "/v1/account", {"Authorization": f"Bearer {o.key}"})
        if msg.status != 200:
            raise click.ClickException(f"GET /v1/account answered {msg.status}: {msg.body[:200]!r}")
        username = orjson.loads(msg.body)["username"]
        done = await asyncio.to_thread(subprocess.run, [
            sys.executable, "-m", "hongyan.cli", "--config", o.config, "account", "set", username,
            "--report-url", sink.url], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise click.ClickException(f"setting the report URL failed:\n{done.stdout}{done.stderr}")
        echo(f"report_url of {username} set to {sink.url}")
        # The server caches accounts for a few seconds; let it see the new URL.
        await asyncio.sleep(3.5)
    elif o.sink_port == 0:
        raise click.UsageError("with --url, give --sink-port matching the account's report_url "
                               "(or --set-report-url --config PATH)")
    return Target(host, port, o.key, o.secret, sim)


# -- session front doors (CMPP, and SMPP built the same way) ----------------------------

class FrontRun:
    """One run through a session front door: the work shared by its connections, and what came back.

    Each connection takes the next message's index, keeps at most ``window``
    submits unanswered (pipelined, as a customer's SP does) and acknowledges
    every report it is delivered.
    """

    def __init__(self, messages: int, numbers: Numbers, content: str, window: int) -> None:
        self.messages = messages
        self.numbers = numbers
        self.content = content
        self.window = window
        self.taken = 0
        self.answered = 0
        self.accepted = 0
        self.refused: Counter = Counter()      # result code -> submits
        self.latencies: list[float] = []
        self.first_sent = 0.0                  # time.time() of the first submit
        self.last_answer = 0.0
        self.reports: Counter = Counter()      # Stat -> reports
        self.first_report = 0.0
        self.last_report = 0.0
        self.logins_failed: list[str] = []
        self.closed_early = 0
        self.changed = asyncio.Event()
        self.expect_reports = True             # False: the server runs no dispatcher

    def take(self) -> int | None:
        if self.taken >= self.messages:
            return None
        i = self.taken
        self.taken += 1
        if i == 0:
            self.first_sent = time.time()
        return i

    def answer(self, sent_at: float, result: int) -> None:
        now = time.time()
        self.answered += 1
        self.last_answer = now
        self.latencies.append(now - sent_at)
        if result == 0:
            self.accepted += 1
        else:
            self.refused[result] += 1
        if self.answered == self.messages:
            self.changed.set()

    def report(self, stat: str) -> None:
        now = time.time()
        if not self.first_report:
            self.first_report = now
        self.last_report = now
        self.reports[stat] += 1
        if self.answered == self.messages and self.report_count() >= self.accepted:
            self.changed.set()

    def report_count(self) -> int:
        return sum(self.reports.values())

    def complete(self) -> bool:
        return self.answered == self.messages and (not self.expect_reports or self.report_count() >= self.accepted)


class _FrontClient(asyncio.Protocol):
    """What a customer's session does whatever the protocol: log in, keep the run's window of
    submits in flight, answer what the server delivers. Subclasses supply the PDUs:
    ``connection_made`` (the login), ``_fill`` (submits), ``data_received`` and ``close``."""

    def __init__(self, run: FrontRun, username: str) -> None:
        self.run = run
        self.username = username
        self.transport: asyncio.Transport | None = None
        self.in_flight: dict[int, float] = {}     # sequence -> when it was sent
        self.bound = asyncio.get_running_loop().create_future()
        self.content = None
        self.submitting = False

    def connection_lost(self, exc) -> None:
        self.transport = None
        if not self.bound.done():
            self.bound.set_exception(ConnectionError("closed before the login was answered"))
        if self.in_flight or self.run.taken < self.run.messages:
            self.run.closed_early += 1
            self.run.changed.set()

    def _fill(self, out: list[bytes]) -> None:
        raise NotImplementedError

    def _flush(self, out: list[bytes]) -> None:
        if self.submitting:
            self._fill(out)
        if out and self.transport is not None:
            self.transport.write(b"".join(out))

    def _refused(self, what: str) -> None:
        self.run.logins_failed.append(what)
        self.bound.set_exception(ConnectionError(f"login refused: {what}"))
        self.transport.close()

    def start(self) -> None:
        """Begin submitting (once every connection of the run is bound)."""
        self.submitting = True
        self._flush([])


class CmppFrontClient(_FrontClient):
    """A customer's SP on one CMPP connection: logs in, pipelines submits, acks DELIVERs."""

    def __init__(self, run: FrontRun, username: str, secret: str, version: int = 0x20) -> None:
        from hongyan.protocols.cmpp.connection import Connection

        super().__init__(run, username)
        self.secret = secret
        self.version = version
        self.conn = Connection("client", version=version)

    def connection_made(self, transport) -> None:
        from hongyan.protocols.cmpp import auth
        from hongyan.protocols.cmpp.events import Connect

        self.transport = transport
        ts = auth.timestamp_now()
        transport.write(self.conn.send(Connect(self.conn.next_sequence(), self.username,
                                               auth.authenticator_source(self.username, self.secret, ts),
                                               self.version, ts)))

    def _fill(self, out: list[bytes]) -> None:
        from hongyan.domain.segments import encode_chunk, plan
        from hongyan.protocols.cmpp.events import Submit

        if self.content is None:
            p = plan(self.run.content)
            if p.count != 1:
                raise click.UsageError("--front takes a content of one SMS")
            self.content = (encode_chunk(p.chunks[0], p.encoding), 8 if p.encoding == "ucs2" else 0)
        body, fmt = self.content
        conn = self.conn
        while len(self.in_flight) < self.run.window:
            i = self.run.take()
            if i is None:
                return
            seq = conn.next_sequence()
            out.append(conn.send(Submit(seq, (self.run.numbers[i],), body, msg_fmt=fmt,
                                        msg_src=self.username)))
            self.in_flight[seq] = time.time()

    def data_received(self, data: bytes) -> None:
        from hongyan.protocols.cmpp.events import (ActiveTest, ActiveTestResp, ConnectResp, Deliver,
                                                   DeliverResp, SubmitResp, Terminate, TerminateResp)

        self.conn.receive_data(data)
        out: list[bytes] = []
        run = self.run
        for ev in self.conn.events():
            t = type(ev)
            if t is SubmitResp:
                sent = self.in_flight.pop(ev.sequence_id, None)
                if sent is not None:
                    run.answer(sent, ev.result)
            elif t is Deliver:
                out.append(self.conn.send(DeliverResp(ev.sequence_id, ev.msg_id, 0)))
                run.report(ev.report.stat if ev.report is not None else "MO")
            elif t is ConnectResp:
                if ev.status != 0:
                    return self._refused(f"CONNECT_RESP status {ev.status}")
                self.bound.set_result(True)
            elif t is ActiveTest:
                out.append(self.conn.send(ActiveTestResp(ev.sequence_id)))
            elif t is Terminate:
                out.append(self.conn.send(TerminateResp(ev.sequence_id)))
        self._flush(out)

    def close(self) -> None:
        from hongyan.protocols.cmpp.events import Terminate

        if self.transport is not None:
            self.transport.write(self.conn.send(Terminate(self.conn.next_sequence())))
            self.transport.close()


class SmppFrontClient(_FrontClient):
    """A customer's ESME on one SMPP connection: binds as a transceiver, pipelines
    submit_sm, acknowledges every deliver_sm."""

    def __init__(self, run: FrontRun, username: str, secret: str) -> None:
        from hongyan.protocols.smpp.connection import Connection

        super().__init__(run, username)
        self.password = secret[:8]      # the SMPP server's rule: the first 8 characters
        self.conn = Connection("esme")

    def connection_made(self, transport) -> None:
        from hongyan.protocols.smpp.events import BindTransceiver

        self.transport = transport
        transport.write(self.conn.send(BindTransceiver(self.conn.next_sequence(), self.username,
                                                       self.password)))

    def _fill(self, out: list[bytes]) -> None:
        from hongyan.domain.segments import encode_chunk, plan
        from hongyan.protocols.smpp.events import SubmitSm
        from hongyan.servers.smpp import gsm_encode

        if self.content is None:
            p = plan(self.run.content)
            if p.count != 1:
                raise click.UsageError("--front takes a content of one SMS")
            if p.encoding == "ucs2":
                self.content = (encode_chunk(p.chunks[0], "ucs2"), 8)
            else:
                self.content = (gsm_encode(p.chunks[0]), 0)
        body, coding = self.content
        conn = self.conn
        while len(self.in_flight) < self.run.window:
            i = self.run.take()
            if i is None:
                return
            seq = conn.next_sequence()
            out.append(conn.send(SubmitSm(seq, destination_addr=self.run.numbers[i], data_coding=coding,
                                          registered_delivery=1, short_message=body)))
            self.in_flight[seq] = time.time()

    def data_received(self, data: bytes) -> None:
        from hongyan.protocols.smpp.events import (BindTransceiverResp, DeliverSm, DeliverSmResp,
                                                   EnquireLink, EnquireLinkResp, SubmitSmResp, Unbind,
                                                   UnbindResp, is_receipt)
        from hongyan.channels.smpp import STATE_TEXT
        from hongyan.protocols.smpp.tlv import Tag, find as find_tlv

        self.conn.receive_data(data)
        out: list[bytes] = []
        run = self.run
        for ev in self.conn.events():
            t = type(ev)
            if t is SubmitSmResp:
                sent = self.in_flight.pop(ev.sequence_number, None)
                if sent is not None:
                    run.answer(sent, ev.command_status)
            elif t is DeliverSm:
                out.append(self.conn.send(DeliverSmResp(ev.sequence_number)))
                # The message_state TLV, not the receipt text: cheaper, and the server sends both.
                state = find_tlv(ev.tlvs, Tag.MESSAGE_STATE) if is_receipt(ev) else None
                run.report("MO" if state is None else STATE_TEXT.get(state, str(state)))
            elif t is BindTransceiverResp:
                if ev.command_status != 0:
                    return self._refused(f"bind_transceiver_resp status 0x{ev.command_status:X}")
                self.bound.set_result(True)
            elif t is EnquireLink:
                out.append(self.conn.send(EnquireLinkResp(ev.sequence_number)))
            elif t is Unbind:
                out.append(self.conn.send(UnbindResp(ev.sequence_number)))
        self._flush(out)

    def close(self) -> None:
        from hongyan.protocols.smpp.errors import SmppError
        from hongyan.protocols.smpp.events import Unbind

        if self.transport is not None:
            try:
                self.transport.write(self.conn.send(Unbind(self.conn.next_sequence())))
            except SmppError:
                pass   # not bound: nothing to unbind
            self.transport.close()


# front door -> client class: made with (run, username, secret); .bound (a future set once
# logged in), .start() (submit through the run's window), .close()
FRONTS: dict[str, type] = {"cmpp": CmppFrontClient, "smpp": SmppFrontClient}


async def drive_front(front: str, host: str, port: int, username: str, secret: str, run: FrontRun,
                      connections: int, timeout: float, echo) -> list:
    """Log ``connections`` sessions in, let them submit everything, wait for the reports."""
    loop = asyncio.get_running_loop()
    cls = FRONTS[front]
    clients = []
    try:
        for _ in range(connections):
            _, client = await loop.create_connection(lambda: cls(run, username, secret), host, port)
            clients.append(client)
            await asyncio.wait_for(asyncio.shield(client.bound), 10)
    except (OSError, TimeoutError) as e:
        for c in clients:
            c.close()
        raise click.ClickException(f"{front} login to {host}:{port} as {username} failed: "
                                   f"{e or type(e).__name__}") from None
    # Every session is bound before the first submit, so the run measures steady pipelining.
    for c in clients:
        c.start()
    deadline = time.monotonic() + timeout
    while not run.complete() and time.monotonic() < deadline and run.closed_early == 0:
        run.changed.clear()
        try:
            await asyncio.wait_for(run.changed.wait(), 1.0)
        except TimeoutError:
            pass
    if run.closed_early:
        echo(f"warning: {run.closed_early} {front} session(s) closed by the server before the run ended")
    return clients


def summarize_front(front: str, connections: int, run: FrontRun, w: Watch, complete: bool) -> dict:
    submit_secs = max(run.last_answer - run.first_sent, 1e-9)
    sim_submits, sim_secs = w.submit_window(run.first_sent)
    reports = run.report_count()
    report_secs = max(run.last_report - run.first_report, 1e-9) if reports > 1 else 0.0
    e2e = max(run.last_report - run.first_sent, 1e-9) if reports else 0.0
    ordered = sorted(run.latencies)

    def pct(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2) if ordered else 0.0
    return {
        "front": front, "connections": connections, "window": run.window, "messages": run.messages,
        "answered": run.answered, "accepted": run.accepted,
        "refused": {str(k): v for k, v in sorted(run.refused.items())}, "closed_early": run.closed_early,
        "submit_seconds": round(submit_secs, 3),
        "submits_per_s": round(run.accepted / submit_secs, 1),
        "latency_ms": {"p50": pct(0.50), "p99": pct(0.99), "max": pct(1.0)},
        "simulator": None if w.simulator is None else {
            "submits": sim_submits, "seconds": round(sim_secs, 3),
            "submits_per_s": round(sim_submits / sim_secs, 1) if sim_secs else 0.0},
        "reports": {"received": reports, "by_stat": dict(run.reports), "complete": complete,
                    "seconds": round(report_secs, 3),
                    "per_s": round(reports / report_secs, 1) if report_secs else 0.0},
        "end_to_end": {"seconds": round(e2e, 3), "messages_per_s": round(reports / e2e, 1) if e2e else 0.0},
    }


def render_front(r: dict, echo) -> None:
    lat = r["latency_ms"]
    echo(f"submits     {r['answered']} of {r['messages']} answered, {r['accepted']} accepted in "
         f"{r['submit_seconds']:.2f} s over {r['connections']} {r['front'].upper()} connection(s), "
         f"window {r['window']}: {r['submits_per_s']:.0f} submits/s")
    echo(f"latency     p50 {lat['p50']:.1f} ms   p99 {lat['p99']:.1f} ms   max {lat['max']:.1f} ms")
    refused = r["refused"]
    echo("refused     " + (", ".join(f"result {k}: {v}" for k, v in refused.items()) if refused else "none"))
    sim = r["simulator"]
    if sim is not None:
        echo(f"simulator   {sim['submits']} submits in {sim['seconds']:.2f} s: {sim['submits_per_s']:.0f} submits/s")
    rep = r["reports"]
    stats = ", ".join(f"{k} {v}" for k, v in sorted(rep["by_stat"].items()))
    echo(f"reports     {rep['received']} delivered on the sessions ({stats or 'none'}) at {rep['per_s']:.0f}/s"
         f"{'' if rep['complete'] else '  (INCOMPLETE: timed out)'}")
    e2e = r["end_to_end"]
    echo(f"end to end  {e2e['messages_per_s']:.0f} messages/s ({rep['received']} in {e2e['seconds']:.2f} s, "
         f"first submit to last report)")


async def run_front_bench(o: BenchOptions, echo=click.echo) -> dict:
    """Submit over a session front door as customers do, and take the reports back on it."""
    m = machine()
    echo(f"machine     {m['cores']} cores, {m['implementation']} {m['python']}, {m['platform']}")
    if o.url is not None:
        raise click.UsageError("--front drives the installation the bench builds (no --url)")
    if o.recipients != 1:
        raise click.UsageError("--front submits one number per SUBMIT (no --recipients)")
    workdir = Path(tempfile.mkdtemp(prefix="hongyan-bench-"))
    # The sink only has to exist for the stack's report URL; reports go back by session.
    sink = Sink(o.sink_host, o.sink_port)
    stack = LocalStack(workdir, report_delay=o.report_delay, fail_rate=o.fail_rate,
                       options=o.options, channel=o.channel, echo=echo, rules=o.rules, content=o.content)
    # -o roles=api: the server accepts but dispatches nothing, which measures the front door
    # and the accept commit alone (no reports come back).
    roles = o.options.get("roles") or ["all"]
    accept_only = not any(r in ("all", "dispatch") for r in roles)
    stack.wait_channels = not accept_only
    clients: list = []
    try:
        await sink.start()
        target = await stack.start(sink.url, o.messages, 1)
        run = FrontRun(o.messages, Numbers(), o.content, o.front_window)
        run.expect_reports = not accept_only
        if accept_only:
            echo(f"roles       {', '.join(roles)}: no dispatcher, so no reports; the front door and accept alone")
        port = stack.smpp_port if o.front == "smpp" else stack.cmpp_port
        echo(f"bench       {o.front} front: {o.messages} messages over {o.connections} connection(s), "
             f"window {o.front_window}, to 127.0.0.1:{port}")
        w = Watch(target.simulator)
        await w.sample()
        sampler = asyncio.create_task(_sample_until(w, run))
        timeout = o.timeout if o.timeout is not None else 60 + o.messages / 200
        try:
            clients = await drive_front(o.front, "127.0.0.1", port, target.username,
                                        target.secret, run, o.connections, timeout, echo)
        finally:
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
        await w.sample()
        result = {"machine": m, **summarize_front(o.front, o.connections, run, w, run.complete())}
        render_front(result, echo)
        if not run.complete():
            echo(f"server log tail:\n{stack.log_tail('server', 15)}")
        return result
    finally:
        for c in clients:
            c.close()
        await stack.stop()
        await sink.stop()
        if o.keep:
            echo(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


async def _sample_until(w: Watch, run: FrontRun) -> None:
    started = time.monotonic()
    next_line = started + PROGRESS_EVERY
    while True:
        await asyncio.sleep(STATS_EVERY)
        await w.sample()
        now = time.monotonic()
        if now >= next_line:
            next_line = now + PROGRESS_EVERY
            click.echo(f"  {now - started:5.0f} s  accepted {run.accepted}  submits {w.submits()}  "
                       f"reports {run.report_count()}")


# -- rules off and on, side by side (--compare-rules) ------------------------------------

# On a shared machine two benches one after the other can differ by a third; run at the
# same time they meet the same neighbours, so their ratio holds where their figures do not.
COMPARE_LABELS = {False: "off", True: "on"}


def labelled(label: str):
    """An echo that marks each line with the bench it comes from."""
    def echo(message: str = "", nl: bool = True, **kw) -> None:
        click.echo(f"{label:<4}{message}", nl=nl, **kw)
    return echo


def _ratio(on: float | None, off: float | None) -> float | None:
    return round(on / off, 3) if on is not None and off else None


def figures(result: dict) -> dict:
    """The two figures compared: end-to-end messages/s and the server's CPU per message."""
    cpu = result.get("server_cpu")
    return {"messages_per_s": result["end_to_end"]["messages_per_s"],
            "us_per_message": None if cpu is None else cpu["us_per_message"]}


def compare_round(n: int, off: dict, on: dict) -> dict:
    """One round: both results, and rules-on over rules-off for each figure."""
    f_off, f_on = figures(off), figures(on)
    return {"round": n, "off": off, "on": on,
            "throughput_ratio": _ratio(f_on["messages_per_s"], f_off["messages_per_s"]),
            "cpu_ratio": _ratio(f_on["us_per_message"], f_off["us_per_message"])}


def median_of(rounds: list[dict], key: str) -> dict | None:
    """The median of one ratio over the rounds, and the round it comes from (the lower
    middle one when the count is even, where the median falls between two rounds)."""
    have = sorted((r for r in rounds if r[key] is not None), key=lambda r: r[key])
    if not have:
        return None
    middle = have[(len(have) - 1) // 2]
    return {"ratio": round(statistics.median(r[key] for r in have), 3),
            "low": have[0][key], "high": have[-1][key], "round": middle["round"],
            "off": figures(middle["off"]), "on": figures(middle["on"])}


def summarize_compare(rounds: list[dict]) -> dict:
    return {"rounds": rounds, "median": {"throughput": median_of(rounds, "throughput_ratio"),
                                         "cpu": median_of(rounds, "cpu_ratio")}}


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render_round(r: dict, echo=click.echo) -> None:
    off, on = figures(r["off"]), figures(r["on"])
    echo(f"round {r['round']:<5} off {_fmt(off['messages_per_s'], '.0f')} messages/s, "
         f"{_fmt(off['us_per_message'], '.0f')} µs a message   on {_fmt(on['messages_per_s'], '.0f')} "
         f"messages/s, {_fmt(on['us_per_message'], '.0f')} µs a message   on/off: throughput "
         f"{_fmt(r['throughput_ratio'], '.2f')}, cpu {_fmt(r['cpu_ratio'], '.2f')}")


def render_compare(summary: dict, echo=click.echo) -> None:
    rounds, med = summary["rounds"], summary["median"]

    def part(name: str, m: dict | None, key: str, unit: str) -> str:
        if m is None:
            return f"{name} -"
        return (f"{name} {m['ratio']:.2f} ({m['low']:.2f} to {m['high']:.2f}; round {m['round']}: off "
                f"{_fmt(m['off'][key], '.0f')}, on {_fmt(m['on'][key], '.0f')} {unit})")
    echo(f"median      over {len(rounds)} round(s), rules on/off: "
         f"{part('throughput', med['throughput'], 'messages_per_s', 'messages/s')}, "
         f"{part('cpu', med['cpu'], 'us_per_message', 'µs a message')}")


async def _together(coros: list) -> list:
    """Run the coroutines at the same time; if one fails, cancel the others (each stops its
    own stack on the way out) and raise that failure rather than a group of them."""
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for t in tasks:
            if t in done and t.exception() is not None:
                raise t.exception()
        return [t.result() for t in tasks]
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def run_compare(o: BenchOptions, rounds: int) -> dict:
    """``rounds`` rounds, each a rules-off and a rules-on bench at once, then the ratios.

    Both benches of a round share this event loop: each has its own temporary folder,
    free ports, processes and sink, and ``run_bench`` keeps no state outside its call.
    A barrier holds whichever stack is up first (the rules-off one, which loads no rules)
    until the other is, so the two loads run over the same seconds. Both loads come from
    this one process, each with its own connections; the client's work is the same for both."""
    done = []
    for n in range(1, rounds + 1):
        click.echo(f"round {n} of {rounds}: rules off and on side by side")
        barrier = asyncio.Barrier(2)
        off, on = await _together([
            run_bench(dataclasses.replace(o, rules=rules, progress=False), labelled(COMPARE_LABELS[rules]),
                      ready=barrier.wait)
            for rules in (False, True)])
        done.append(compare_round(n, off, on))
        render_round(done[-1])
    summary = summarize_compare(done)
    if rounds > 1:
        # Each round's line came amid both benches' output; together they read as a table.
        for r in done:
            render_round(r)
    render_compare(summary)
    return summary


def check_compare(ctx: click.Context, compare: bool, url: str | None, front: str, sink_port: int) -> None:
    """Refuse what --compare-rules cannot do, before anything is started."""
    def given(name: str) -> bool:
        return ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)
    if not compare:
        if given("rounds"):
            raise click.UsageError("--rounds goes with --compare-rules")
        return
    if url is not None:
        raise click.UsageError("--compare-rules builds its own two installations; it cannot drive --url")
    if front != "http":
        raise click.UsageError("--compare-rules measures the HTTP front door only (no --front cmpp/smpp)")
    if given("rules"):
        raise click.UsageError("--compare-rules runs rules off and on itself; drop --rules/--no-rules")
    if sink_port:
        raise click.UsageError("--compare-rules runs two sinks, each on a free port; drop --sink-port")


def _run(coro):
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


@click.command("bench")
@click.option("--messages", type=click.IntRange(1), default=20_000, show_default=True,
              help="Recipient-messages to send in all.")
@click.option("--recipients", type=click.IntRange(1, 50_000), default=1, show_default=True,
              help="Numbers per request (1000 for the batch case).")
@click.option("--concurrency", type=click.IntRange(1), default=64, show_default=True,
              help="Connections, each with one request in flight.")
@click.option("--dialect", type=click.Choice(sorted(DOORS)), default="native", show_default=True,
              help="Front door the requests use.")
@click.option("--content", default=DEFAULT_CONTENT, show_default=True, help="The text sent.")
@click.option("--url", default=None, help="Drive this running server (http://HOST:PORT) instead of starting one.")
@click.option("--key", default=None, help="With --url: the account's Bearer API key.")
@click.option("--secret", default=None, help="With --url: the account's API secret, to check push signatures.")
@click.option("--simulator-stats", default=None, help="With --url: the simulator's control URL, for submits/s.")
@click.option("--sink-host", default="127.0.0.1", show_default=True, help="Where the report sink listens.")
@click.option("--sink-port", type=int, default=0, help="The sink's port (default: any free one).")
@click.option("--set-report-url", is_flag=True,
              help="With --url: point the account's report_url at the sink (needs --config).")
@click.option("--config", "config_path", default=None, help="With --set-report-url: the server's config file.")
@click.option("--report-delay", type=float, default=0.5, show_default=True,
              help="Seconds the simulator waits before reporting.")
@click.option("--fail-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of messages the simulator reports as failed.")
@click.option("--mps", type=int, default=50_000, show_default=True, help="The simulator channel's messages/s.")
@click.option("--window", type=int, default=128, show_default=True, help="The simulator channel's window.")
@click.option("--links", type=int, default=4, show_default=True, help="The simulator channel's connections.")
@click.option("--front", type=click.Choice(["http", *sorted(FRONTS)]), default="http", show_default=True,
              help="Submit over HTTP (--dialect) or as a customer's SP over a session front door.")
@click.option("--connections", type=click.IntRange(1), default=1, show_default=True,
              help="With --front cmpp or smpp: sessions of the demo account.")
@click.option("--front-window", type=click.IntRange(1), default=16, show_default=True,
              help="With --front cmpp or smpp: unanswered submits per session.")
@click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE",
              help="A server setting for the bench config, e.g. -o sqlite_synchronous=NORMAL (repeatable).")
@click.option("--timeout", type=float, default=None,
              help="Seconds to wait for the reports after the load (default 60 + 1 s per 200 messages).")
@click.option("--rules/--no-rules", default=False, show_default=True,
              help="Switch every accept rule on for the demo account (10,000 sensitive words, 10,000 "
                   "blacklisted numbers, signature, template, limits), none of them hit by the load.")
@click.option("--compare-rules", is_flag=True,
              help="Run rules-off and rules-on benches side by side, --rounds rounds, and print both figures "
                   "(end-to-end messages/s, server CPU µs a message) and their ratio on/off per round, then "
                   "the median ratios. Both benches of a round run at once on their own installations, so "
                   "they meet the same machine load. Local stack and HTTP only (no --url, --front, "
                   "--sink-port); it sets the rules itself and refuses --rules/--no-rules.")
@click.option("--rounds", type=click.IntRange(1), default=3, show_default=True,
              help="With --compare-rules: rounds to run; the summary takes the median of each ratio.")
@click.option("--keep", is_flag=True, help="Keep the temporary folder (config, database, logs).")
@click.option("--json", "as_json", is_flag=True, help="Also print the result as JSON.")
@click.pass_context
def bench_command(ctx: click.Context, messages: int, recipients: int, concurrency: int, dialect: str, content: str,
                  url: str | None, key: str | None, secret: str | None, simulator_stats: str | None,
                  sink_host: str, sink_port: int, set_report_url: bool, config_path: str | None,
                  report_delay: float, fail_rate: float, mps: int, window: int, links: int,
                  options: tuple[str, ...], timeout: float | None, rules: bool, keep: bool,
                  as_json: bool, front: str = "http", connections: int = 1, front_window: int = 16,
                  compare_rules: bool = False, rounds: int = 3) -> None:
    """Measure accepted requests/s, submits/s and end-to-end messages/s, request to pushed report."""
    check_compare(ctx, compare_rules, url, front, sink_port)
    o = BenchOptions(messages=messages, recipients=recipients, concurrency=concurrency, dialect=dialect,
                     content=content, url=url, key=key, secret=secret, simulator_stats=simulator_stats,
                     sink_host=sink_host, sink_port=sink_port, set_report_url=set_report_url,
                     config=config_path, report_delay=report_delay, fail_rate=fail_rate, timeout=timeout,
                     keep=keep, options=coerce_options(options),
                     channel={"mps": mps, "window": window, "connections": links}, rules=rules,
                     front=front, connections=connections, front_window=front_window)
    try:
        if compare_rules:
            result = _run(run_compare(o, rounds))
        else:
            result = _run(run_bench(o) if front == "http" else run_front_bench(o))
    except KeyboardInterrupt:
        raise click.Abort() from None
    if as_json:
        click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
