"""The load client, the callback sink and the bench's request builders, over local sockets."""
from __future__ import annotations

import asyncio
import time

import click
import httpx
import orjson
import pytest

from hongyan.bench import NativeDoor, Numbers, Target, coerce_options, free_ports
from hongyan.core.notify import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from hongyan.domain.numbers import parse_recipients
from hongyan.loadgen import MessageParser, ParseError, fetch, run_load
from hongyan.sink import Sink
from tests.e2e.conftest import stack  # noqa: F401  (fixture)

SECRET = "s3cret-for-tests"


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    ts = str(int(time.time()))
    return {"Content-Type": "application/json", TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(secret, ts, body)}


def push(ids, kind: str = "report", status: str = "delivered") -> bytes:
    return orjson.dumps({"type": kind, "items": [
        {"id": i, "message_id": 1000 + i, "to": "13800000000", "status": status, "carrier_status": "DELIVRD"}
        for i in ids]})


# -- parser ---------------------------------------------------------------------

def test_parser_reads_chunked_answer_fed_byte_by_byte():
    data = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: yes\r\n\r\n"
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnop")
    p = MessageParser(response=True)
    got = []
    for b in data:
        p.feed(bytes([b]))
        msg = p.next()
        while msg is not None:
            got.append(msg)
            msg = p.next()
    assert [(m.status, m.body) for m in got] == [(200, b"hello, world"), (404, b"nop")]


def test_parser_skips_interim_answer_and_reads_until_close():
    p = MessageParser(response=True)
    p.feed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nConnection: close\r\n\r\npartial")
    assert p.next() is None
    msg = p.eof()
    assert msg.status == 200 and msg.body == b"partial" and not msg.keep_alive


def test_parser_refuses_garbage():
    p = MessageParser(response=True)
    p.feed(b"SSH-2.0-OpenSSH\r\n\r\n")
    with pytest.raises(ParseError):
        p.next()
    p = MessageParser(response=True)
    p.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    with pytest.raises(ParseError):
        p.next()


# -- sink -------------------------------------------------------------------------

async def test_loadgen_drives_the_sink_over_reused_connections():
    sink = Sink(secret=SECRET)
    await sink.start()
    try:
        def build(i):
            body = push([2 * i, 2 * i + 1])
            return "POST", "/", signed(body), body
        res = await run_load("127.0.0.1", sink.port, build, concurrency=8, total=300)
        assert res.statuses == {200: 300}
        assert not res.errors
        assert res.connections == 8
        assert len(res.latencies) == 300 and res.first_start <= res.last_end
        assert sink.total("report") == 600 and sink.counts["report"] == {"delivered": 600}
        assert sink.pushes == 300 and sink.duplicates == 0
        assert await sink.wait_for(600, 0.1)
    finally:
        await sink.stop()


async def test_sink_rejects_bad_or_missing_signature():
    sink = Sink(secret=SECRET)
    await sink.start()
    try:
        body = push([1, 2])
        wrong = await fetch("127.0.0.1", sink.port, "POST", "/", signed(body, "other secret"), body)
        missing = await fetch("127.0.0.1", sink.port, "POST", "/", {"Content-Type": "application/json"}, body)
        tampered = signed(body)
        late = await fetch("127.0.0.1", sink.port, "POST", "/", tampered, body.replace(b"delivered", b"failed!!!"))
        assert (wrong.status, missing.status, late.status) == (401, 401, 401)
        assert sink.rejected == 3 and sink.total("report") == 0
        good = await fetch("127.0.0.1", sink.port, "POST", "/", signed(body), body)
        assert good.status == 200 and good.body == b"ok"
        assert sink.total("report") == 2
        bad = await fetch("127.0.0.1", sink.port, "POST", "/", signed(b"[1]"), b"[1]")
        assert bad.status == 400 and sink.bad == 1
    finally:
        await sink.stop()


async def test_sink_drops_repeated_ids_and_counts_by_type_and_status():
    sink = Sink()  # no secret: signatures are not checked
    await sink.start()
    try:
        for body in (push([1, 2, 3]), push([3, 4], status="failed"), push([1, 2, 3]),
                     push([1], kind="mo", status="")):
            assert (await fetch("127.0.0.1", sink.port, "POST", "/", {}, body)).status == 200
        assert sink.items == {"report": 4, "mo": 1}
        assert sink.counts["report"] == {"delivered": 3, "failed": 1}
        assert sink.duplicates == 4
        first = sink.first_at
        assert 0 < first <= sink.last_at
        counts = orjson.loads((await fetch("127.0.0.1", sink.port, "GET", "/")).body)
        assert counts["items"] == {"report": 4, "mo": 1}
        started = time.monotonic()
        assert not await sink.wait_for(5, 0.3)
        assert time.monotonic() - started < 2
    finally:
        await sink.stop()


async def test_sink_answers_expect_continue():
    sink = Sink()
    await sink.start()
    try:
        body = push([7])
        reader, writer = await asyncio.open_connection("127.0.0.1", sink.port)
        writer.write(f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
                     f"Expect: 100-continue\r\n\r\n".encode())
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2) == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(body)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        assert head.startswith(b"HTTP/1.1 200")
        writer.close()
        assert sink.total() == 1
    finally:
        await sink.stop()


# -- loadgen against an awkward server -----------------------------------------------

async def test_loadgen_reconnects_and_reads_every_framing():
    served = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
                served += 1
                n = int(body)
                status = 200 if n % 2 == 0 else 503
                if n % 5 == 0:
                    # No length: the answer ends when the connection does.
                    writer.write(f"HTTP/1.1 {status} X\r\n\r\nclose-delimited".encode())
                    await writer.drain()
                    writer.close()
                    return
                if n % 3 == 0:
                    writer.write(f"HTTP/1.1 {status} X\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 f"3\r\nabc\r\n0\r\n\r\n".encode())
                elif n % 7 == 0:
                    writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".encode())
                    await writer.drain()
                    writer.close()
                    return
                else:
                    writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\n\r\nok".encode())
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    bodies: dict[int, bytes] = {}
    try:
        res = await run_load("127.0.0.1", port, lambda i: ("POST", "/x", [("X-N", str(i))], str(i).encode()),
                             concurrency=4, total=200, on_response=lambda i, s, b: bodies.__setitem__(i, b))
    finally:
        server.close()
        await server.wait_closed()
    assert not res.errors
    assert res.statuses == {200: 100, 503: 100}
    assert served == 200 and len(bodies) == 200
    assert bodies[10] == b"close-delimited" and bodies[9] == b"abc" and bodies[1] == b"ok"
    assert res.connections > 4  # closed connections were replaced


async def test_loadgen_counts_refused_connections_and_stops():
    port = free_ports(1)[0]
    res = await asyncio.wait_for(run_load("127.0.0.1", port, iter([("GET", "/", {}, b"")] * 3),
                                          concurrency=2, total=10), 5)
    assert res.answered == 0
    assert sum(res.errors.values()) == 3  # the iterator had 3 requests, fewer than total
    assert all(k.startswith("connect") for k in res.errors)


# -- bench pieces -------------------------------------------------------------------

def test_numbers_are_distinct_valid_mobiles():
    nums = Numbers(seed=7)
    phones = [nums[i] for i in range(4000)]
    assert len(set(phones)) == 4000
    parsed = parse_recipients(phones)
    assert not parsed.invalid and len(parsed.valid) == 4000


def test_native_door_splits_messages_into_requests():
    door = NativeDoor(Target("127.0.0.1", 1, "hy_key"), messages=2500, recipients=1000, content="【x】hi",
                      numbers=Numbers(seed=1))
    assert door.requests == 3
    method, path, headers, body = door.build(2)
    doc = orjson.loads(body)
    assert (method, path) == ("POST", "/v1/messages")
    assert headers["Authorization"] == "Bearer hy_key"
    assert len(doc["to"]) == 500 and doc["content"] == "【x】hi"
    door.on_response(2, 200, b"{}")
    door.on_response(0, 402, b'{"code": "insufficient_balance"}')
    assert door.accepted_messages == 500 and door.refusals == {(402, "insufficient_balance"): 1}
    single = NativeDoor(Target("h", 1, "k"), messages=3, recipients=1, content="c", numbers=Numbers(seed=1))
    assert isinstance(orjson.loads(single.build(0)[3])["to"], str)


def test_config_options_take_the_setting_type():
    assert coerce_options(("commit_window_ms=5", "sqlite_synchronous=NORMAL", "push_batch=100")) == {
        "commit_window_ms": 5.0, "sqlite_synchronous": "NORMAL", "push_batch": 100}
    with pytest.raises(Exception):
        coerce_options(("no_such_setting=1",))


@pytest.mark.parametrize("dialect", ["native", "qmsg", "kxt3", "httpbatch", "qxt", "k1680"])
async def test_every_bench_door_is_accepted_by_its_front_door(stack, dialect):
    from hongyan.bench import BENCH_PRODUCT, DOORS, Numbers, Target
    from hongyan.core import accounts as acc

    with stack.runtime.engine.begin() as conn:
        acc.create_product(conn, BENCH_PRODUCT, "bench")
        acc.subscribe(conn, "alice", BENCH_PRODUCT)
        acc.topup(conn, acc.owner_of(conn, "alice"), 100, BENCH_PRODUCT)
    stack.runtime.directory.invalidate()
    host, port = stack.base.removeprefix("http://").split(":")
    target = Target(host, int(port), stack.user["key"], stack.user["secret"], username="alice", org="200001")
    door = DOORS[dialect](target, messages=4, recipients=2, content="【鸿雁】测试", numbers=Numbers(7))
    async with httpx.AsyncClient(base_url=stack.base) as client:
        for i in range(door.requests):
            method, path, headers, body = door.build(i)
            r = await client.request(method, path, headers=headers, content=body)
            door.on_response(i, r.status_code, r.content)
    assert door.accepted_requests == 2 and door.accepted_messages == 4, door.refusals


# -- bench --compare-rules ------------------------------------------------------------

def bench_result(messages_per_s: float, us_per_message: float | None) -> dict:
    """The part of a run_bench result the comparison reads."""
    r = {"end_to_end": {"seconds": 1.0, "messages_per_s": messages_per_s}}
    if us_per_message is not None:
        r["server_cpu"] = {"seconds": 1.0, "us_per_message": us_per_message}
    return r


def test_compare_round_divides_rules_on_by_rules_off():
    from hongyan.bench import compare_round

    r = compare_round(1, bench_result(1000, 400), bench_result(800, 500))
    assert (r["throughput_ratio"], r["cpu_ratio"]) == (0.8, 1.25)
    assert r["off"]["end_to_end"]["messages_per_s"] == 1000 and r["on"]["server_cpu"]["us_per_message"] == 500
    # No CPU figure (or none to divide by): no ratio rather than a crash.
    assert compare_round(2, bench_result(0, None), bench_result(800, 500))["throughput_ratio"] is None
    assert compare_round(2, bench_result(1000, None), bench_result(800, 500))["cpu_ratio"] is None


def test_compare_summary_takes_the_median_of_each_ratio_and_its_round():
    from hongyan.bench import compare_round, summarize_compare

    rounds = [compare_round(1, bench_result(1000, 400), bench_result(900, 600)),   # 0.9, 1.5
              compare_round(2, bench_result(1000, 400), bench_result(700, 440)),   # 0.7, 1.1
              compare_round(3, bench_result(1000, 400), bench_result(800, 480))]   # 0.8, 1.2
    med = summarize_compare(rounds)["median"]
    assert med["throughput"] == {"ratio": 0.8, "low": 0.7, "high": 0.9, "round": 3,
                                 "off": {"messages_per_s": 1000, "us_per_message": 400},
                                 "on": {"messages_per_s": 800, "us_per_message": 480}}
    assert (med["cpu"]["ratio"], med["cpu"]["round"], med["cpu"]["low"], med["cpu"]["high"]) == (1.2, 3, 1.1, 1.5)
    # An even count: the median between the middle two, the figures of the lower one.
    even = summarize_compare(rounds[:2])["median"]["throughput"]
    assert (even["ratio"], even["round"]) == (0.8, 2)
    assert summarize_compare([compare_round(1, bench_result(0, None), bench_result(1, None))])["median"] == {
        "throughput": None, "cpu": None}


@pytest.mark.parametrize("args, says", [
    (["--url", "http://127.0.0.1:1", "--key", "k"], "--url"),
    (["--front", "cmpp"], "--front"),
    (["--rules"], "--rules/--no-rules"),
    (["--no-rules"], "--rules/--no-rules"),
    (["--sink-port", "9999"], "--sink-port"),
])
def test_compare_rules_refuses_what_it_cannot_do(args, says, monkeypatch):
    from click.testing import CliRunner

    import hongyan.bench as bench

    async def must_not_run(*a, **kw):
        raise AssertionError("a bench was started")
    monkeypatch.setattr(bench, "run_bench", must_not_run)
    out = CliRunner().invoke(bench.bench_command, ["--compare-rules", *args])
    assert out.exit_code == 2 and says in out.output, out.output


def test_rounds_without_compare_rules_is_refused():
    from click.testing import CliRunner

    from hongyan.bench import bench_command

    out = CliRunner().invoke(bench_command, ["--rounds", "2"])
    assert out.exit_code == 2 and "--compare-rules" in out.output


def test_compare_rules_runs_both_benches_at_once_each_round(monkeypatch):
    from click.testing import CliRunner

    import hongyan.bench as bench

    running: set[bool] = set()
    seen = []

    async def fake_run_bench(o, echo, ready=None):
        running.add(o.rules)
        await ready()                 # both reach the barrier, or this never returns
        seen.append((o.rules, o.progress, set(running)))
        await asyncio.sleep(0.01)
        running.discard(o.rules)
        echo("end to end  fake")
        return bench_result(800 if o.rules else 1000, 500 if o.rules else 400)
    monkeypatch.setattr(bench, "run_bench", fake_run_bench)
    out = CliRunner().invoke(bench.bench_command, ["--compare-rules", "--rounds", "2", "--messages", "10",
                                                   "--json"])
    assert out.exit_code == 0, out.output
    # Both of a round were running when each passed the barrier; neither printed progress.
    assert sorted(seen) == [(False, False, {False, True})] * 2 + [(True, False, {False, True})] * 2
    assert "off end to end  fake" in out.output and "on  end to end  fake" in out.output
    assert "on/off: throughput 0.80, cpu 1.25" in out.output
    assert "median      over 2 round(s)" in out.output
    doc = orjson.loads(out.output[out.output.index("{\n"):])
    assert [r["round"] for r in doc["rounds"]] == [1, 2]
    assert doc["median"]["throughput"]["ratio"] == 0.8 and doc["median"]["cpu"]["ratio"] == 1.25


def test_compare_rules_stops_the_other_bench_when_one_fails(monkeypatch):
    from click.testing import CliRunner

    import hongyan.bench as bench

    cancelled = []

    async def fake_run_bench(o, echo, ready=None):
        if o.rules:
            raise click.ClickException("the server's /healthz: no answer")
        try:
            await ready()             # would wait for the failed one for ever
        except asyncio.CancelledError:
            cancelled.append(o.rules)
            raise
    monkeypatch.setattr(bench, "run_bench", fake_run_bench)
    out = CliRunner().invoke(bench.bench_command, ["--compare-rules", "--rounds", "1"])
    assert out.exit_code == 1 and "no answer" in out.output, out.output
    assert cancelled == [False]
