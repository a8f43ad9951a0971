"""The registry's tables: the schema the newest migration (registry/migrations/) creates.

Queries import the tables from here; migrations never do (each keeps the DDL of its own
revision), so editing a table here always comes with a new migration.
"""

from __future__ import annotations

import sqlalchemy as sa

#: kept in fl_meta beside Alembic's revision, so releases from before the migrations (which
#: read only fl_meta) refuse a newer schema; every migration sets it (2: fl_tokens, 3: fl_counters,
#: 4: keyed audit chain, fl_maintenance, fl_pins, 5: run owners and
#: heartbeats, 6: a JSON config per deployment move, 7: fl_llm)
SCHEMA_VERSION = 7

metadata = sa.MetaData()

meta_table = sa.Table(
    "fl_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

definitions_table = sa.Table(
    "fl_definitions",
    metadata,
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("major", sa.Integer, primary_key=True),
    sa.Column("minor", sa.Integer, primary_key=True),
    sa.Column("patch", sa.Integer, primary_key=True),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("spec_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("reasons", sa.Text, nullable=False, default="[]"),
)

data_versions_table = sa.Table(
    "fl_data_versions",
    metadata,
    sa.Column("group_name", sa.String(128), primary_key=True),
    sa.Column("major", sa.Integer, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("operation", sa.String(32), nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("rows_added", sa.BigInteger, nullable=False),
    sa.Column("rows_removed", sa.BigInteger, nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("schema_hash", sa.String(64), nullable=False),
    sa.Column("files", sa.Text, nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("user_name", sa.String(128), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("note", sa.Text, nullable=False, default=""),
)

runs_table = sa.Table(
    "fl_runs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("user_name", sa.String(128), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ended_at", sa.DateTime(timezone=True)),
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("inputs", sa.Text, nullable=False),
    sa.Column("outputs", sa.Text, nullable=False),
    sa.Column("code_hash", sa.String(64), nullable=False),
    sa.Column("env_hash", sa.String(64), nullable=False),
    sa.Column("error", sa.Text, nullable=False, default=""),
    # the owning process and its last sign of life (migration 0003)
    sa.Column("host", sa.String(255), nullable=False, server_default=""),
    sa.Column("pid", sa.Integer),
    sa.Column("heartbeat_at", sa.DateTime(timezone=True)),
    sa.Index("ix_fl_runs_status", "status"),
)

training_table = sa.Table(
    "fl_training_datasets",
    metadata,
    sa.Column("view", sa.String(128), primary_key=True),
    sa.Column("major", sa.Integer, primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("pins", sa.Text, nullable=False),
    sa.Column("entity_hash", sa.String(64), nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("columns", sa.Text, nullable=False),
    sa.Column("entity_path", sa.Text, nullable=False),
    sa.Column("output_path", sa.Text),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("user_name", sa.String(128), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("params", sa.Text, nullable=False),
)

validations_table = sa.Table(
    "fl_validations",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("group_name", sa.String(128), nullable=False, index=True),
    sa.Column("major", sa.Integer, nullable=False),
    sa.Column("version", sa.Integer),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("policy", sa.String(16), nullable=False),
    sa.Column("rows_in", sa.BigInteger, nullable=False),
    sa.Column("rows_published", sa.BigInteger, nullable=False),
    sa.Column("rows_quarantined", sa.BigInteger, nullable=False),
    sa.Column("report", sa.Text, nullable=False),
    sa.Column("rejected_path", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

materializations_table = sa.Table(
    "fl_materializations",
    metadata,
    sa.Column("group_name", sa.String(128), primary_key=True),
    sa.Column("major", sa.Integer, primary_key=True),
    sa.Column("store", sa.String(300), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

findings_table = sa.Table(
    "fl_findings",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("monitor", sa.String(128), nullable=False, index=True),
    sa.Column("target", sa.String(300), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("blocking", sa.Boolean, nullable=False),
    sa.Column("finding", sa.Text, nullable=False),
    sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    sa.Column("resolution", sa.Text),
)

stats_table = sa.Table(
    "fl_stats",
    metadata,
    sa.Column("identity", sa.String(300), primary_key=True),
    sa.Column("stats", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

models_table = sa.Table(
    "fl_models",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("artifact_path", sa.Text, nullable=False),
    sa.Column("artifact_hash", sa.String(64), nullable=False),
    sa.Column("training_dataset", sa.Text),
    sa.Column("metrics", sa.Text, nullable=False),
    sa.Column("gates", sa.Text, nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("user_name", sa.String(128), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
)

deployments_table = sa.Table(
    "fl_deployments",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("model_version", sa.Integer, nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("user_name", sa.String(128), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    # strategy of this move: canary, shadow, fallback (JSON; revision 0005)
    sa.Column("config", sa.Text, nullable=False, server_default="{}"),
)

tokens_table = sa.Table(
    "fl_tokens",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("views", sa.Text, nullable=False),
    sa.Column("purpose", sa.Text, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)

audit_table = sa.Table(
    "fl_audit",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("user_name", sa.String(128), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("object", sa.Text, nullable=False),
    sa.Column("details", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    # "sha256": written before the chain was keyed (revision 0003); "hmac-sha256" since
    sa.Column("scheme", sa.String(16), nullable=False, server_default="sha256"),
)

maintenance_table = sa.Table(
    "fl_maintenance",
    metadata,
    sa.Column("group_name", sa.String(128), primary_key=True),
    sa.Column("major", sa.Integer, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("operation", sa.String(32), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("user_name", sa.String(128), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

pins_table = sa.Table(
    "fl_pins",
    metadata,
    sa.Column("group_name", sa.String(128), primary_key=True),
    sa.Column("major", sa.Integer, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("path", sa.String(1024), primary_key=True),
    sa.Column("pinned", sa.String(300), nullable=False),
    sa.Column("user_name", sa.String(128), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

counters_table = sa.Table(
    "fl_counters",
    metadata,
    sa.Column("scope", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(300), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

#: LLM artifacts (docs/llm.md): numbered records per (kind, name) with a JSON body:
#: chunkers, embedders, index versions, index pointers, traces, evaluation sets, fine-tune sets
llm_table = sa.Table(
    "fl_llm",
    metadata,
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("user_name", sa.String(128), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
