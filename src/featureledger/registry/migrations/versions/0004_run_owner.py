"""Run owners and heartbeats: which process on which host runs a run, and when it last said so.

A run killed mid-way stayed "running" forever. With its owner (host, pid) and a heartbeat
the store tells a live run from a dead one and marks the dead one ``abandoned``
(docs/reliability.md#runs-and-their-owners). Runs recorded before this revision have no
owner; their start time stands in for the heartbeat.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

meta = sa.table("fl_meta", sa.column("key", sa.String), sa.column("value", sa.Text))


def upgrade() -> None:
    op.add_column("fl_runs", sa.Column("host", sa.String(255), nullable=False, server_default=""))
    op.add_column("fl_runs", sa.Column("pid", sa.Integer))
    op.add_column("fl_runs", sa.Column("heartbeat_at", sa.DateTime(timezone=True)))
    op.create_index("ix_fl_runs_status", "fl_runs", ["status"])
    op.get_bind().execute(meta.update().where(meta.c.key == "schema_version").values(value="5"))


def downgrade() -> None:
    op.drop_index("ix_fl_runs_status", "fl_runs")
    with op.batch_alter_table("fl_runs") as batch:
        batch.drop_column("heartbeat_at")
        batch.drop_column("pid")
        batch.drop_column("host")
    op.get_bind().execute(meta.update().where(meta.c.key == "schema_version").values(value="4"))
