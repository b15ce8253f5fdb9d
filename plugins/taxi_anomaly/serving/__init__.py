"""Serving: Trino access for people and Superset dashboards kept as code (import, refresh, cache warm-up)."""
