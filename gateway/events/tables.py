"""Where business events go, in the control store: endpoints, activations (event,
legal entity, endpoint; kept when deactivated), each endpoint's progress through the
event log, the delivery log, and the errors store."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Index, Integer, String, Table, Text

from datasources.sql.tables import UtcDateTime
from gateway.control import control_metadata

endpoint = Table(
    "business_event_endpoint",
    control_metadata,
    Column("name", String(100), primary_key=True),
    Column("kind", String(20), nullable=False),  # WEBHOOK or BROKER
    Column("url", Text, nullable=False),
    Column("subject", String(200)),  # BROKER: the NATS JetStream subject
    Column("secret", String(100)),  # WEBHOOK: signs each request (HMAC-SHA256)
    Column("tries", Integer, nullable=False),
    Column("wait_seconds", Integer, nullable=False),  # the first pause between tries
    Column("position", Integer, nullable=False),  # the last ControlNumber handled
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", String(320), nullable=False),
)

activation = Table(
    "business_event_activation",
    control_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("business_event", String(200), nullable=False),
    Column("legal_entity", String(10), nullable=False),  # "" = every legal entity
    Column("endpoint", String(100), nullable=False, index=True),
    Column("active", Boolean, nullable=False),
    Column("activated_at", UtcDateTime, nullable=False),
    Column("activated_by", String(320), nullable=False),
    Column("deactivated_at", UtcDateTime),
    Column("deactivated_by", String(320)),
    Index("ix_business_event_activation_event", "business_event", "active"),
)

delivery = Table(
    "business_event_delivery",
    control_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("endpoint", String(100), nullable=False),
    Column("control_number", Integer, nullable=False),  # 0: a test message
    Column("event_id", String(36), nullable=False),
    Column("business_event", String(200), nullable=False),
    Column("delivered", Boolean, nullable=False),
    Column("tries", Integer, nullable=False),
    Column("detail", Text, nullable=False),  # the answer, or why it failed
    Column("milliseconds", Integer, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Index("ix_business_event_delivery_endpoint", "endpoint", "id"),
)

error = Table(
    "business_event_error",
    control_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("endpoint", String(100), nullable=False, index=True),
    Column("control_number", Integer, nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("business_event", String(200), nullable=False),
    Column("category", String(100), nullable=False),
    Column("legal_entity", String(10), nullable=False),
    Column("payload", Text, nullable=False),  # as it was sent
    Column("message", Text, nullable=False),
    Column("tries", Integer, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("resent_at", UtcDateTime),  # resent and delivered: kept, no longer pending
    Column("resent_to", String(100)),
)
