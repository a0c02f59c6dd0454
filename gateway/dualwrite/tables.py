"""Dual-write's rows in the control store: map states, initial-sync progress, errors."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Index, Integer, String, Table, Text

from datasources.sql.tables import UtcDateTime
from gateway.control import control_metadata

map_state = Table(
    "dual_write_map_state",
    control_metadata,
    Column("environment", String(100), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("state", String(20), nullable=False),
    Column("master", String(20), nullable=False),
    Column("error", Text),
    Column("updated_at", UtcDateTime, nullable=False),
)

progress = Table(
    "dual_write_initial_sync",
    control_metadata,
    Column("environment", String(100), primary_key=True),
    Column("map", String(200), primary_key=True),
    Column("company", String(4), primary_key=True),  # "" for a cross-company map
    Column("run", String(200), nullable=False),
    Column("position", Integer, nullable=False),
    Column("source", String(20), nullable=False),
    Column("after", Text),  # the last key copied, as JSON
    Column("copied", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("done", Boolean, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)
sync_error = Table(
    "dual_write_error",
    control_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("environment", String(100), nullable=False, index=True),
    Column("map", String(200), nullable=False),
    Column("company", String(4), nullable=False),
    Column("source", String(20), nullable=False),
    Column("key", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("at", UtcDateTime, nullable=False),
)
queue = Table(
    "dual_write_queue",
    control_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("environment", String(100), nullable=False),
    Column("map", String(200), nullable=False),
    Column("source", String(20), nullable=False),  # the side the write was made on
    Column("key", Text, nullable=False),  # the source row's key, as JSON
    Column("at", UtcDateTime, nullable=False),
    Index("ix_dual_write_queue_map", "environment", "map", "id"),
)
activity = Table(
    "dual_write_activity",
    control_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("environment", String(100), nullable=False),
    Column("map", String(200), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("kind", String(40), nullable=False),
    Column("message", Text, nullable=False),
    Index("ix_dual_write_activity_map", "environment", "map", "id"),
)
alert_rule = Table(
    "dual_write_alert",
    control_metadata,
    Column("environment", String(100), primary_key=True),
    Column("map", String(200), primary_key=True),
    Column("action", String(20), primary_key=True),  # NOTIFY, PAUSE or STOP
    Column("errors", Integer, nullable=False),
    Column("window_minutes", Integer, nullable=False),
    Column("fired_at", UtcDateTime),
)
