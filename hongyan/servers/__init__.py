"""Front doors that hold a session open for customers (CMPP, SMPP).

``outbox`` keeps the reports and MO of customers who submit over a session
until one of their sessions is bound, and hands them over within its window.
"""
from __future__ import annotations

from .outbox import Outbox

__all__ = ["Outbox"]
