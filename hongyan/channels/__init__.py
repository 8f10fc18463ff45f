"""Carrier channels: one module per protocol behind the interface in ``base``."""
from __future__ import annotations

from .base import Channel, ChannelConfig, ChannelEvents

PROTOCOLS = ("cmpp2",)


def make_channel(config: ChannelConfig, events: ChannelEvents) -> Channel:
    if config.protocol in ("cmpp2", "cmpp"):
        from .cmpp import CmppChannel
        return CmppChannel(config, events)
    raise ValueError(f"channel {config.name!r}: unknown protocol {config.protocol!r} "
                     f"(known: {', '.join(PROTOCOLS)})")
