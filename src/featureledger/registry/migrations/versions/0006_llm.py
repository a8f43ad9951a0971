"""LLM artifacts: one table of numbered records per (kind, name) with a JSON body.

Chunkers, embedding functions, index versions and pointers, retrieval traces, evaluation
sets and fine-tuning sets (docs/llm.md) are few enough kinds, each with a small body, that
one table keeps the registry simple; the body is JSON text like models' metrics.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

meta = sa.table("fl_meta", sa.column("key", sa.String), sa.column("value", sa.Text))


def upgrade() -> None:
    op.create_table(
        "fl_llm",
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("user_name", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.get_bind().execute(meta.update().where(meta.c.key == "schema_version").values(value="7"))


def downgrade() -> None:
    op.drop_table("fl_llm")
    op.get_bind().execute(meta.update().where(meta.c.key == "schema_version").values(value="6"))
