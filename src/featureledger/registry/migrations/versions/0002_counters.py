"""Counters: one row per numbered series, so numbers are drawn safely on PostgreSQL.

Training-set numbers, model versions, deployment moves and the audit sequence were
"max + 1", safe only under SQLite's database-wide write lock. A counter row is incremented
in the transaction that inserts the numbered record: the row lock queues concurrent writers
of the same series, and a rolled-back insert rolls its number back, so series stay gap-free.
Existing series are seeded with their current maximum.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

frozen = sa.MetaData()
counters = sa.Table(
    "fl_counters",
    frozen,
    sa.Column("scope", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(300), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)
training = sa.table(
    "fl_training_datasets",
    sa.column("view", sa.String),
    sa.column("major", sa.Integer),
    sa.column("number", sa.Integer),
)
models = sa.table("fl_models", sa.column("name", sa.String), sa.column("version", sa.Integer))
deployments = sa.table("fl_deployments", sa.column("name", sa.String), sa.column("seq", sa.Integer))
audit = sa.table("fl_audit", sa.column("seq", sa.Integer))
meta = sa.table("fl_meta", sa.column("key", sa.String), sa.column("value", sa.Text))


def upgrade() -> None:
    bind = op.get_bind()
    counters.create(bind)
    seeds = [
        sa.select(
            sa.literal("training_dataset"),
            # the series key the registry uses: "<view>@v<major>"
            training.c.view + sa.literal("@v") + sa.cast(training.c.major, sa.String),
            sa.func.max(training.c.number),
        ).group_by(training.c.view, training.c.major),
        sa.select(sa.literal("model"), models.c.name, sa.func.max(models.c.version)).group_by(
            models.c.name
        ),
        sa.select(
            sa.literal("deployment"), deployments.c.name, sa.func.max(deployments.c.seq)
        ).group_by(deployments.c.name),
        sa.select(sa.literal("audit"), sa.literal(""), sa.func.max(audit.c.seq)).having(
            sa.func.count() > 0
        ),
    ]
    for seed in seeds:
        bind.execute(counters.insert().from_select(["scope", "name", "value"], seed))
    bind.execute(meta.update().where(meta.c.key == "schema_version").values(value="3"))


def downgrade() -> None:
    bind = op.get_bind()
    counters.drop(bind)
    bind.execute(meta.update().where(meta.c.key == "schema_version").values(value="2"))
