"""Carrier channels: one module per protocol behind the interface in ``base``."""
from __future__ import annotations

import importlib

from .base import Channel, ChannelConfig, ChannelEvents

# HTTP upstreams: another platform reached through a vendor API, by dialect.
UPSTREAM_CLIENTS = {
    "http-httpbatch": ("upstream_httpbatch", "HttpBatchClient"),
    "http-qxt": ("upstream_qxt", "QxtClient"),
    "http-k1680": ("upstream_k1680", "K1680Client"),
    "http-qmsg": ("upstream_qmsg", "QmsgClient"),
    "http-kxt3": ("upstream_kxt3", "Kxt3Client"),
}

PROTOCOLS = ("cmpp2", *UPSTREAM_CLIENTS)


def make_channel(config: ChannelConfig, events: ChannelEvents) -> Channel:
    if config.protocol in ("cmpp2", "cmpp"):
        from .cmpp import CmppChannel
        return CmppChannel(config, events)
    if config.protocol in UPSTREAM_CLIENTS:
        from .upstream import UpstreamChannel
        module, cls = UPSTREAM_CLIENTS[config.protocol]
        client = getattr(importlib.import_module(f"{__name__}.{module}"), cls)(config)
        return UpstreamChannel(config, events, client)
    raise ValueError(f"channel {config.name!r}: unknown protocol {config.protocol!r} "
                     f"(known: {', '.join(PROTOCOLS)})")
