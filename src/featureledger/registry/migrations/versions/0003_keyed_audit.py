"""Keyed audit chain, maintenance commits and registered pins.

``fl_audit.scheme`` tells entries written before this revision (``sha256``: plain SHA-256
links, which anyone can recompute) from keyed ones (``hmac-sha256``). The key lives outside
the registry, so this migration cannot re-key: the first store opened with a key appends a
``re-keyed`` entry linking to the old head, plus one entry per existing data version
recording its row (registry/sql.py, ``_anchor``). ``fl_maintenance`` records table commits
that change no data (Delta's VACUUM START/END), which are not data versions; ``fl_pins``
records the data versions pointer files name, which vacuum keeps.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

meta = sa.table("fl_meta", sa.column("key", sa.String), sa.column("value", sa.Text))


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column(
        "fl_audit", sa.Column("scheme", sa.String(16), nullable=False, server_default="sha256")
    )
    op.create_table(
        "fl_maintenance",
        sa.Column("group_name", sa.String(128), primary_key=True),
        sa.Column("major", sa.Integer, primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("operation", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.Column("user_name", sa.String(128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "fl_pins",
        sa.Column("group_name", sa.String(128), primary_key=True),
        sa.Column("major", sa.Integer, primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("path", sa.String(1024), primary_key=True),
        sa.Column("pinned", sa.String(300), nullable=False),
        sa.Column("user_name", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    bind.execute(meta.update().where(meta.c.key == "schema_version").values(value="4"))


def downgrade() -> None:
    bind = op.get_bind()
    op.drop_table("fl_pins")
    op.drop_table("fl_maintenance")
    op.drop_column("fl_audit", "scheme")
    bind.execute(meta.update().where(meta.c.key == "schema_version").values(value="3"))
