"""`hongyan simulate --protocol P`: every carrier simulator runs alone with its control API."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import httpx
import pytest

from hongyan.channels.simulator import run_simulator
from hongyan.protocols.smpp import events as smpp
from hongyan.protocols.smpp.connection import Connection as SmppConnection
from tests.helpers import free_port, until


@pytest.mark.parametrize("protocol", ["cmpp2", "smpp", "sgip", "smgp"])
async def test_each_simulator_serves_its_port_and_control_api(protocol):
    port, control = free_port(), free_port()
    task = asyncio.create_task(run_simulator("127.0.0.1", port, control, 0.1, 0.0, None, protocol))
    try:
        async def stats():
            try:
                async with httpx.AsyncClient() as c:
                    return (await c.get(f"http://127.0.0.1:{control}/stats")).json()
            except httpx.HTTPError:
                return None
        got = await until(stats, what="the control API")
        assert "submits" in got
        _, writer = await asyncio.open_connection("127.0.0.1", port)   # the gateway's own port
        writer.close()
        # No SP is bound yet: an MO cannot be delivered, and the control API says so; an SGIP
        # gateway connects out to the SP itself, so it keeps the MO until it reaches it.
        async with httpx.AsyncClient() as c:
            r = await c.post(f"http://127.0.0.1:{control}/mo",
                             content=json.dumps({"phone": "13800138000", "dest": "1069000", "text": "hi"}))
        assert r.status_code == (200 if protocol == "sgip" else 409)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_the_command_names_the_protocols():
    out = subprocess.run([sys.executable, "-m", "hongyan.cli", "simulate", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "cmpp2|cmpp3|smpp|sgip|smgp" in out


async def test_an_smpp_client_binds_to_the_standalone_simulator():
    port, control = free_port(), free_port()
    task = asyncio.create_task(run_simulator("127.0.0.1", port, control, 0.1, 0.0, None, "smpp"))
    try:
        await until(lambda: _listening(port), what="the SMPP port")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        conn = SmppConnection("esme")
        writer.write(conn.send(smpp.BindTransceiver(sequence_number=1, system_id="sp", password="pw")))
        conn.receive_data(await asyncio.wait_for(reader.read(4096), 5))
        resp = conn.next_event()
        assert isinstance(resp, smpp.BindTransceiverResp) and resp.command_status == 0
        writer.close()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _listening(port: int) -> bool:
    try:
        _, w = await asyncio.open_connection("127.0.0.1", port)
        w.close()
        return True
    except OSError:
        return False
