"""The SQL datasource: F&O and Dataverse stores in SQLite or PostgreSQL, via SQLAlchemy."""
