"""fno-gateway: one GraphQL API over the F&O and Dataverse shared data layer."""

__version__ = "0.1.0"
