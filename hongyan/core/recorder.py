"""What channels report, recorded in batches.

Channels call back for every submit answer, failure, report and MO. Those calls
only append to lists; a recorder task writes whatever has gathered every few
milliseconds as one writer job, in arrival order (a part's submit answer is
always recorded no later than its report). A batch that cannot be written stays
in memory and is tried again: a database hiccup delays reports, never drops
them. Reports and MO carry an ``ack``: the channel answers the carrier only
after the batch holding them is committed, so a crash before that makes the
carrier deliver them again instead of losing them.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from sqlalchemy import Connection, bindparam, select, update

from hongyan.channels.base import Inbound, Report
from hongyan.domain.clock import now_ms
from hongyan.store.bulk import insert_rows, update_rows
from hongyan.store.tables import carrier_ids, messages
from hongyan.store.writer import Writer

from .receive import Final, Receiver

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10


def retry_delay_ms(attempts: int) -> int:
    return min(2 ** attempts, 300) * 1000


@dataclass(slots=True)
class _Batch:
    sent: list[tuple[int, int, list[str]]] = field(default_factory=list)
    failed: list[tuple[int, str, bool]] = field(default_factory=list)
    reports: list[Report] = field(default_factory=list)
    mo: list[tuple[Inbound, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sent) + len(self.failed) + len(self.reports) + len(self.mo)

    def extend(self, other: "_Batch") -> None:
        self.sent[:0] = other.sent
        self.failed[:0] = other.failed
        self.reports[:0] = other.reports
        self.mo[:0] = other.mo


class Sink:
    """The ChannelEvents a channel is given: it tags every call with the channel."""

    def __init__(self, recorder: "Recorder", channel_id: int, access_code: str) -> None:
        self.recorder = recorder
        self.channel_id = channel_id
        self.access_code = access_code

    def sent(self, message_id: int, carrier_ids: list[str]) -> None:
        self.recorder._pending.sent.append((message_id, self.channel_id, carrier_ids))
        self.recorder._poke()

    def failed(self, message_id: int, status: str, retryable: bool) -> None:
        self.recorder._pending.failed.append((message_id, status, retryable))
        self.recorder._poke()

    def report(self, report: Report) -> None:
        self.recorder._pending.reports.append(report)
        self.recorder._poke()

    def mo(self, inbound: Inbound) -> None:
        self.recorder._pending.mo.append((inbound, self.access_code))
        self.recorder._poke()


class Recorder:
    def __init__(self, writer: Writer, receiver: Receiver, *, interval: float = 0.005,
                 on_events=None, on_requeued=None) -> None:
        self.writer = writer
        self.receiver = receiver
        self.interval = interval
        self.on_events = on_events
        self.on_requeued = on_requeued
        self._pending = _Batch()
        self._wake = asyncio.Event()
        self.recorded_sent = 0
        self.recorded_reports = 0

    def sink(self, channel_id: int, access_code: str = "") -> Sink:
        return Sink(self, channel_id, access_code)

    def _poke(self) -> None:
        if not self._wake.is_set():
            self._wake.set()

    def backlog(self) -> int:
        return len(self._pending)

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.interval)  # let a batch gather
            self._wake.clear()
            batch, self._pending = self._pending, _Batch()
            if not batch:
                continue
            try:
                events, requeued = await self.writer.run(self._record, batch)
            except Exception:  # noqa: BLE001 - keep the batch and try again
                log.exception("recording %d channel events failed; retrying", len(batch))
                self._pending.extend(batch)
                await asyncio.sleep(0.5)
                self._poke()
                continue
            self.recorded_sent += len(batch.sent)
            self.recorded_reports += len(batch.reports)
            for r in batch.reports:
                if r.ack is not None:
                    r.ack()
            for m, _ in batch.mo:
                if m.ack is not None:
                    m.ack()
            if events and self.on_events:
                self.on_events()
            if requeued and self.on_requeued:
                self.on_requeued()

    async def flush(self) -> None:
        """Wait until everything reported so far is recorded (shutdown, tests)."""
        while len(self._pending):
            self._poke()
            await asyncio.sleep(self.interval * 2)
        await self.writer.run(lambda conn, arg: None)

    def _record(self, conn: Connection, batch: _Batch) -> tuple[int, int]:
        now = now_ms()
        if batch.sent:
            insert_rows(conn, carrier_ids, ("channel_id", "carrier_id", "message_id", "part_no"),
                        [(ch, cid, mid, n) for mid, ch, cids in batch.sent for n, cid in enumerate(cids, 1)])
            update_rows(conn, messages, ("state", "submitted_at", "channel_id"), "id = ? AND state = 'submitting'",
                        [("submitted", now, ch, mid) for mid, ch, _ in batch.sent])
        requeued = 0
        events = 0
        if batch.failed:
            requeued, events = self._failed(conn, batch.failed, now)
        if batch.reports:
            written, _ = self.receiver.apply_reports(conn, batch.reports, now=now)
            events += written
        if batch.mo:
            events += self.receiver.apply_mo(conn, batch.mo, now=now)
        return events, requeued

    def _failed(self, conn: Connection, failed: list[tuple[int, str, bool]], now: int) -> tuple[int, int]:
        attempts = dict(conn.execute(select(messages.c.id, messages.c.attempts).where(
            messages.c.id.in_([mid for mid, _, _ in failed]), messages.c.state == "submitting")).all())
        retry, finals = [], []
        for mid, status, retryable in failed:
            if mid not in attempts:
                continue
            if retryable and attempts[mid] < MAX_ATTEMPTS:
                retry.append({"mid": mid, "due": now + retry_delay_ms(attempts[mid]), "note": status})
            else:
                finals.append(Final(mid, "failed", status))
        if retry:
            conn.execute(update(messages).where(messages.c.id == bindparam("mid"))
                         .values(state="queued", due_at=bindparam("due"), claimed_by=None,
                                 note=bindparam("note")), retry)
        return len(retry), self.receiver.finalize(conn, finals, now)
