"""Leases: named leases for work one replica at a time does (deliveries to an
endpoint, change tracking); job lease holders named by host and process.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import datasources.sql.tables

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "lease",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("owner", sa.String(length=100), nullable=False),
        sa.Column("expires_at", datasources.sql.tables.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.alter_column(
            "lease_owner",
            existing_type=sa.VARCHAR(length=40),
            type_=sa.String(length=100),
            existing_nullable=True,
        )


def downgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.alter_column(
            "lease_owner",
            existing_type=sa.String(length=100),
            type_=sa.VARCHAR(length=40),
            existing_nullable=True,
        )
    op.drop_table("lease")
