"""Airflow Assets of the platform: one per trip type's raw zone, updated when a month lands there.

The daily ingestion adds events through the alias `tap_raw_landed` only for the trip types that got a new (or
never scored) month; the event's extra lists the months and the sandbox, and the scoring DAG, scheduled on these
assets, scores exactly those months.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset, AssetAlias

from taxi_anomaly.orchestration.params import TRIP_TYPES

RAW_LANDED_ALIAS = AssetAlias("tap_raw_landed")


def raw_asset(trip_type: str) -> Asset:
    return Asset(name=f"tap_raw_tlc_{trip_type}", uri=f"s3://tap-raw/tlc/{trip_type}/", group="tlc-raw")


RAW_ASSETS = {trip_type: raw_asset(trip_type) for trip_type in TRIP_TYPES}


def targets_from_events(events: Any) -> list[dict[str, Any]]:
    """(trip type, month, sandbox) to score, from the triggering asset events (latest event wins per month)."""
    by_asset = {trip_type: asset for trip_type, asset in RAW_ASSETS.items()}
    wanted: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for trip_type, asset in by_asset.items():
        for event in events.get(asset, []) if events else []:
            extra = dict(getattr(event, "extra", None) or {})
            sandbox = {
                "namespace": extra.get("namespace") or "taxi",
                "storage_prefix": extra.get("storage_prefix") or "",
                "tlc_base_url": extra.get("tlc_base_url"),
            }
            for month in extra.get("months") or []:
                key = (trip_type, month, sandbox["namespace"], sandbox["storage_prefix"])
                wanted[key] = {"trip_type": trip_type, "month": month, "label": f"{trip_type} {month}", **sandbox}
    return [wanted[k] for k in sorted(wanted)]
