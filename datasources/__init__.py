"""Adapters to the stores behind the gateway, each behind the `DataSource` protocol."""
