"""The Dataverse store: native tables, their metadata, and what setup installs into it."""
