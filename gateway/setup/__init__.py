"""Linking an F&O environment to Dataverse: setup jobs, status, and add-ins."""
