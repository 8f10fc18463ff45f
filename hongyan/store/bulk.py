"""Multi-row writes on the hot path, straight to the driver.

SQLAlchemy Core compiles a statement once but still builds every row's
parameters in Python; for the tens of thousands of rows a second that accept,
submit and report write, handing tuples to the driver's ``executemany`` costs a
fraction of that. Statements are plain SQL over our own table and column names,
rendered once per dialect with its parameter style.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

from sqlalchemy import Connection, Table


def _mark(conn: Connection) -> str:
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


@lru_cache(maxsize=None)
def _insert_sql(table: str, columns: tuple[str, ...], mark: str) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"


@lru_cache(maxsize=None)
def _update_sql(table: str, set_columns: tuple[str, ...], where: str, mark: str) -> str:
    sets = ", ".join(f"{c} = {mark}" for c in set_columns)
    return f"UPDATE {table} SET {sets} WHERE {where.replace('?', mark)}"


def select_rows(conn: Connection, sql: str, params: Sequence, *, lock: bool = False) -> list[tuple]:
    """A SELECT written with ``?`` marks, straight to the driver (``lock``: FOR UPDATE where
    the engine has row locks; SQLite's writer holds the whole database anyway)."""
    mark = _mark(conn)
    if mark != "?":
        sql = sql.replace("?", mark)
    if lock and conn.dialect.name == "postgresql":
        sql += " FOR UPDATE"
    return conn.exec_driver_sql(sql, tuple(params)).fetchall()


def insert_rows(conn: Connection, table: Table, columns: tuple[str, ...], rows: Sequence[tuple]) -> None:
    """INSERT many rows given as tuples in ``columns`` order."""
    if rows:
        conn.exec_driver_sql(_insert_sql(table.name, columns, _mark(conn)), list(rows))


def update_rows(conn: Connection, table: Table, set_columns: tuple[str, ...], where: str,
                rows: Sequence[tuple]) -> None:
    """UPDATE once per row: each tuple holds the SET values, then the ``where``'s ``?`` values."""
    if rows:
        conn.exec_driver_sql(_update_sql(table.name, set_columns, where, _mark(conn)), list(rows))
