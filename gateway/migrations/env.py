"""Alembic's entry point for the control store: run by `gateway.control.migrate` with
the connection to migrate (there is no alembic.ini; see `gateway.control.config`)."""

from alembic import context

from gateway.control import control_metadata, load_tables

load_tables()
context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=control_metadata,
    render_as_batch=True,  # SQLite alters a table by copying it
)
with context.begin_transaction():
    context.run_migrations()
