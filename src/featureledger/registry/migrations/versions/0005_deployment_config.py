"""Deployment strategies: each move of a deployment pointer records its configuration.

A deployment was one model version. It may now also carry a canary (a weighted, sticky
share of traffic), a shadow challenger and a fallback model (docs/serving.md#deployments);
that configuration is JSON text beside each move, so the history shows every split served.
Moves recorded before this revision have none (a plain blue/green pointer).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

meta = sa.table("fl_meta", sa.column("key", sa.String), sa.column("value", sa.Text))


def upgrade() -> None:
    op.add_column(
        "fl_deployments", sa.Column("config", sa.Text, nullable=False, server_default="{}")
    )
    op.get_bind().execute(meta.update().where(meta.c.key == "schema_version").values(value="6"))


def downgrade() -> None:
    with op.batch_alter_table("fl_deployments") as batch:
        batch.drop_column("config")
    op.get_bind().execute(meta.update().where(meta.c.key == "schema_version").values(value="5"))
