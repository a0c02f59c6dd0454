"""Baseline: the control store as the releases before migrations made it.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import datasources.sql.tables

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "add_in_installation",
        sa.Column("environment", sa.String(length=100), nullable=False),
        sa.Column("add_in", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("parameters", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("updated_at", datasources.sql.tables.UtcDateTime(), nullable=False),
        sa.Column("installed_at", datasources.sql.tables.UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("environment", "add_in"),
    )
    op.create_table(
        "api_key",
        sa.Column("id", sa.String(length=12), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("roles", sa.String(length=100), nullable=False),
        sa.Column("companies", sa.Text(), nullable=True),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("created_at", datasources.sql.tables.UtcDateTime(), nullable=False),
        sa.Column("revoked_at", datasources.sql.tables.UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "business_event_activation",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("business_event", sa.String(length=200), nullable=False),
        sa.Column("legal_entity", sa.String(length=10), nullable=False),
        sa.Column("endpoint", sa.String(length=100), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("activated_at", datasources.sql.tables.UtcDateTime(), nullable=False),
        sa.Column("activated_by", sa.String(length=320), nullable=False),
        sa.Column("deactivated_at", datasources.sql.tables.UtcDateTime(), nullable=True),
        sa.Column("deactivated_by", sa.String(length=320), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("business_event_activation", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_business_event_activation_endpoint"), ["endpoint"], unique=False
        )
        batch_op.create_index(
            "ix_business_event_activation_event", ["business_event", "active"], unique=False
        )

    op.create_table(
        "business_event_delivery",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("endpoint", sa.String(length=100), nullable=False),
        sa.Column("control_number", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("business_event", sa.String(length=200), nullable=False),
        sa.Column("delivered", sa.Boolean(), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("milliseconds", sa.Integer(), nullable=False),
        sa.Column("at", datasources.sql.tables.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("business_event_delivery", schema=None) as batch_op:
        batch_op.create_index(
            "ix_business_event_delivery_endpoint", ["endpoint", "id"], unique=False
        )

    op.create_table(
        "business_event_endpoint",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=True),
        sa.Column("secret", sa.String(length=100), nullable=True),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("wait_seconds", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", datasources.sql.tables.UtcDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "business_event_error",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("endpoint", sa.String(length=100), nullable=False),
        sa.Column("control_number", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("business_event", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column("legal_entity", sa.String(length=10), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("at", datasources.sql.tables.UtcDateTime(), nullable=False),
        sa.Column("resent_at", datasources.sql.tables.UtcDateTime(), nullable=True),
        sa.Column("resent_to", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("business_event_error", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_business_event_error_endpoint"), ["endpoint"], unique=False
        )

    op.create_table(
        "business_event_log",
        sa.Column("control_number", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("business_event", sa.String(length=200), nullable=False),
        sa.Column("major", sa.Integer(), nullable=False),
        sa.Column("minor", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column("legal_entity", sa.String(length=10), nullable=False),
        sa.Column("entity", sa.String(length=200), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("initiating_user", sa.String(length=320), nullable=False),
        sa.Column("at", datasources.sql.tables.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("control_number"),
        sa.UniqueConstraint("event_id"),
    )
    with op.batch_alter_table("business_event_log", schema=None) as batch_op:
        batch_op.create_index(
            "ix_business_event_log_event", ["business_event", "control_number"], unique=False
        )

    op.create_table(
        "catalog_entry",
        sa.Column("name", sa.String(length=81), nullable=False),
        sa.Column("collection_name", sa.String(length=81), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("visible", sa.Boolean(), nullable=False),
        sa.Column("published", sa.Boolean(), nullable=False),
        sa.Column("refresh_needed", sa.Boolean(), nullable=False),
        sa.Column("last_refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.Column("snapshot", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "dataverse_environment",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("url", sa.String(length=1000), nullable=False),
        sa.Column("reserved_bytes", sa.BigInteger(), nullable=False),
        sa.Column("managed", sa.Boolean(), nullable=False),
        sa.Column("created_at", datasources.sql.tables.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "dual_write_activity",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("environment", sa.String(length=100), nullable=False),
        sa.Column("map", sa.String(length=200), nullable=False),
        sa.Column("at", datasources.sql.tables.UtcDateTime(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("dual_write_activity", schema=None) as batch_op:
        batch_op.create_index(
            "ix_dual_write_activity_map", ["environment", "map", "id"], unique=False
        )

    op.create_table(
        "dual_write_alert",
        sa.Column("environment", sa.String(length=100), nullable=False),
        sa.Column("map", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("window_minutes", sa.Integer(), nullable=False),
        sa.Column("fired_at", datasources.sql.tables.UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("environment", "map", "action"),
    )
    op.create_table(
        "dual_write_error",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("environment", sa.String(length=100), nullable=False),
        sa.Column("map", sa.String(length=200), nullable=False),
        sa.Column("company", sa.String(length=4), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("at", datasources.sql.tables.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("dual_write_error", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dual_write_error_environment"), ["environment"], unique=False
        )

    op.create_table(
        "dual_write_initial_sync",
        sa.Column("environment", sa.String(length=100), nullable=False),
        sa.Column("map", sa.String(length=200), nullable=False),
        sa.Column("company", sa.String(length=4), nullable=False),
        sa.Column("run", sa.String(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("after", sa.Text(), nullable=True),
        sa.Column("copied", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("updated_at", datasources.sql.tables.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("environment", "map", "company"),
    )
    op.create_table(
        "dual_write_map_state",
        sa.Column("environment", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("master", sa.String(length=20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("updated_at", datasources.sql.tables.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("environment", "name"),
    )
    op.create_table(
        "dual_write_queue",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("environment", sa.String(length=100), nullable=False),
        sa.Column("map", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("at", datasources.sql.tables.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("dual_write_queue", schema=None) as batch_op:
        batch_op.create_index("ix_dual_write_queue_map", ["environment", "map", "id"], unique=False)

    op.create_table(
        "environment",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("deployment_state", sa.String(length=20), nullable=False),
        sa.Column("administrator", sa.String(length=200), nullable=True),
        sa.Column("fno_url", sa.String(length=1000), nullable=False),
        sa.Column("created_at", datasources.sql.tables.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "integration",
        sa.Column("environment", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("stage", sa.String(length=40), nullable=False),
        sa.Column("template", sa.String(length=40), nullable=False),
        sa.Column("dataverse_environment", sa.String(length=100), nullable=False),
        sa.Column("existing", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("link_id", sa.String(length=36), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("started_at", datasources.sql.tables.UtcDateTime(), nullable=False),
        sa.Column("updated_at", datasources.sql.tables.UtcDateTime(), nullable=False),
        sa.Column("completed_at", datasources.sql.tables.UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("environment"),
    )
    op.create_table(
        "integration_event",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("environment", sa.String(length=100), nullable=False),
        sa.Column("at", datasources.sql.tables.UtcDateTime(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("integration_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_integration_event_environment"), ["environment"], unique=False
        )

    op.create_table(
        "job",
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("due", sa.Boolean(), nullable=False),
        sa.Column("lease_owner", sa.String(length=40), nullable=True),
        sa.Column("lease_expires_at", datasources.sql.tables.UtcDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("not_before", datasources.sql.tables.UtcDateTime(), nullable=True),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "key"),
    )
    op.create_table(
        "tenant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("capacity_bytes", sa.BigInteger(), nullable=False),
        sa.Column("policy", sa.String(length=20), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "tenant_user",
        sa.Column("email", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("email"),
    )
    op.create_table(
        "user_licence",
        sa.Column("email", sa.String(length=200), nullable=False),
        sa.Column("licence", sa.String(length=60), nullable=False),
        sa.ForeignKeyConstraint(["email"], ["tenant_user.email"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("email", "licence"),
    )
    op.create_table(
        "user_role",
        sa.Column("email", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(["email"], ["tenant_user.email"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("email", "role"),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("user_role")
    op.drop_table("user_licence")
    op.drop_table("tenant_user")
    op.drop_table("tenant")
    op.drop_table("job")
    with op.batch_alter_table("integration_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_integration_event_environment"))

    op.drop_table("integration_event")
    op.drop_table("integration")
    op.drop_table("environment")
    with op.batch_alter_table("dual_write_queue", schema=None) as batch_op:
        batch_op.drop_index("ix_dual_write_queue_map")

    op.drop_table("dual_write_queue")
    op.drop_table("dual_write_map_state")
    op.drop_table("dual_write_initial_sync")
    with op.batch_alter_table("dual_write_error", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dual_write_error_environment"))

    op.drop_table("dual_write_error")
    op.drop_table("dual_write_alert")
    with op.batch_alter_table("dual_write_activity", schema=None) as batch_op:
        batch_op.drop_index("ix_dual_write_activity_map")

    op.drop_table("dual_write_activity")
    op.drop_table("dataverse_environment")
    op.drop_table("catalog_entry")
    with op.batch_alter_table("business_event_log", schema=None) as batch_op:
        batch_op.drop_index("ix_business_event_log_event")

    op.drop_table("business_event_log")
    with op.batch_alter_table("business_event_error", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_business_event_error_endpoint"))

    op.drop_table("business_event_error")
    op.drop_table("business_event_endpoint")
    with op.batch_alter_table("business_event_delivery", schema=None) as batch_op:
        batch_op.drop_index("ix_business_event_delivery_endpoint")

    op.drop_table("business_event_delivery")
    with op.batch_alter_table("business_event_activation", schema=None) as batch_op:
        batch_op.drop_index("ix_business_event_activation_event")
        batch_op.drop_index(batch_op.f("ix_business_event_activation_endpoint"))

    op.drop_table("business_event_activation")
    op.drop_table("api_key")
    op.drop_table("add_in_installation")
