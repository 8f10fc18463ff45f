"""Routes: which channel a message goes out on.

For now a message goes to its product's channel when that channel is up, else
to the default channel, else to any channel that is up.
"""
from __future__ import annotations

from hongyan.channels.base import Channel


class Router:
    def __init__(self) -> None:
        self._channels: dict[int, Channel] = {}
        self._product_channel: dict[int, int] = {}
        self.default_id: int | None = None

    def add(self, channel: Channel, *, default: bool = False) -> None:
        self._channels[channel.id] = channel
        if default or self.default_id is None:
            self.default_id = channel.id

    def set_product_channels(self, mapping: dict[int, int]) -> None:
        self._product_channel = dict(mapping)

    def channels(self) -> list[Channel]:
        return list(self._channels.values())

    def channel(self, channel_id: int) -> Channel:
        return self._channels[channel_id]

    def route(self, carrier: str, product_id: int | None) -> Channel | None:
        if product_id is not None:
            cid = self._product_channel.get(product_id)
            if cid is not None and cid in self._channels and self._channels[cid].connected:
                return self._channels[cid]
        if self.default_id is not None and self._channels[self.default_id].connected:
            return self._channels[self.default_id]
        for ch in self._channels.values():
            if ch.connected:
                return ch
        return None

    def any_connected(self) -> bool:
        return any(ch.connected for ch in self._channels.values())

    def room(self) -> int:
        return sum(ch.room() for ch in self._channels.values() if ch.connected)
