"""Dual-write: maps between F&O entities and Dataverse tables, and keeping them in sync."""
