"""Airflow Assets of the platform: one per trip type's raw zone, updated when a month lands there.

The daily ingestion adds events through the alias `tap_raw_landed` only for the trip types that got a new (or
never scored) month; the event's extra lists the months and the sandbox, and the scoring DAG, scheduled on these
assets, scores exactly those months.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset, AssetAlias

from taxi_anomaly.contract import Granularity
from taxi_anomaly.orchestration.params import Sandbox
from taxi_anomaly.orchestration.payloads import MonthRun
from taxi_anomaly.tlc import TRIP_TYPES

RAW_LANDED_ALIAS = AssetAlias("tap_raw_landed")


def raw_asset(trip_type: str) -> Asset:
    return Asset(name=f"tap_raw_tlc_{trip_type}", uri=f"s3://tap-raw/tlc/{trip_type}/", group="tlc-raw")


RAW_ASSETS = {trip_type: raw_asset(trip_type) for trip_type in TRIP_TYPES}


def targets_from_events(events: Any, granularity: str = "city") -> list[MonthRun]:
    """(trip type, month, sandbox) to score, from the triggering asset events (latest event wins per month).

    An event's extra is checked like a trigger form's values (Sandbox, MonthRun): an asset event is an entry too,
    and a wrong value fails the planning task, naming the event and the value."""
    wanted: dict[tuple[str, str, Sandbox], MonthRun] = {}
    for trip_type, asset in RAW_ASSETS.items():
        for event in events.get(asset, []) if events else []:
            extra = dict(getattr(event, "extra", None) or {})
            try:
                sandbox = Sandbox.from_params(extra)
                months = extra.get("months") or []
                if not isinstance(months, list):
                    raise ValueError(f"months must be a list of YYYY-MM, got {months!r}")
                for month in months:
                    run = MonthRun(trip_type, month, sandbox, Granularity(granularity))
                    wanted[(trip_type, month, sandbox)] = run
            except ValueError as err:
                raise ValueError(f"asset event {getattr(event, 'id', '?')} of {asset.name}: {err}") from err
    return [wanted[k] for k in sorted(wanted, key=lambda k: (k[0], k[1], k[2].namespace, k[2].storage_prefix))]
