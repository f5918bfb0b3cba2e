"""Fixtures for the reliability tests: the PostgreSQL cluster, and settings on either store."""

from __future__ import annotations

from tests.pg import pg_cluster, pg_url

__all__ = ["pg_cluster", "pg_url"]
