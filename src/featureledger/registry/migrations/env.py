"""Alembic environment of the registry migrations.

featureledger runs them itself when a registry is opened (registry/migrate.py passes its
connection in). Maintainers can use the `alembic` command with the alembic.ini beside this
file: ``alembic -c src/featureledger/registry/migrations/alembic.ini -x url=URL current``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from featureledger.registry.migrate import VERSION_TABLE

config = context.config
connection = config.attributes.get("connection")

if connection is not None:
    context.configure(connection=connection, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("give the registry URL: alembic -c .../alembic.ini -x url=URL ...")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        context.configure(connection=conn, version_table=VERSION_TABLE)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
