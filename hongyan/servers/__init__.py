"""Front doors that hold a session open: the CMPP and SMPP servers for customers.

A customer logs in with its account's credentials, submits through the same
accept rules as HTTP, and gets its reports and MO back on its session as
DELIVER PDUs (``outbox``). Both servers share one outbox per process.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .outbox import Outbox

if TYPE_CHECKING:
    from hongyan.runtime import Runtime


async def start_servers(runtime: "Runtime") -> list:
    """Start the servers the settings ask for; returns them (each has ``stop()``)."""
    s = runtime.settings
    started = []
    outbox = runtime.outbox
    if s.cmpp_server_port:
        from .cmpp import CmppServer
        server = CmppServer(runtime.accept, runtime.directory, outbox, host=s.server_host,
                            port=s.cmpp_server_port)
        await server.start()
        started.append(server)
    if s.smpp_server_port:
        from .smpp import SmppServer
        server = SmppServer(runtime.accept, runtime.directory, outbox, host=s.server_host,
                            port=s.smpp_server_port)
        await server.start()
        started.append(server)
    return started
