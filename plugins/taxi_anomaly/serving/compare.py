"""What differs between the asset files and Superset: its export of each dashboard, compared object by uuid."""

from __future__ import annotations

import copy
import io
import json
import zipfile
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taxi_anomaly.serving.assets import Assets
    from taxi_anomaly.serving.superset_client import SupersetClient

# Set by the import but absent from Superset's export, so not comparable.
NOT_EXPORTED = frozenset({"is_managed_externally"})


def differences(client: SupersetClient, assets: Assets) -> list[str]:
    """Where Superset's objects differ from the asset files ("charts/x.yaml.params.row_limit: 10 != 25")."""
    found: list[str] = []
    exported: dict[str, dict[str, Any]] = {}
    for slug in assets.dashboard_slugs():
        dashboard = client.dashboard(slug)
        if dashboard is None:
            found.append(f"dashboard {slug!r} is not in Superset")
            continue
        exported.update(exported_configs(client, dashboard["id"]))
    if found:
        return found
    for path, ours in assets.files.items():
        if path == "metadata.yaml":
            continue
        theirs = exported.get(str(ours["uuid"]))
        if theirs is None:
            found.append(f"{path}: not in Superset")
            continue
        found += diff_config(with_instance_ids(ours, theirs), theirs, path)
    return found


def exported_configs(client: SupersetClient, dashboard_id: int) -> dict[str, dict[str, Any]]:
    """Superset's export of a dashboard with its charts, datasets and databases, by uuid."""
    import yaml

    data = client.download(f"/api/v1/dashboard/export/?q=!({dashboard_id})")
    configs = {}
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        for name in bundle.namelist():
            if not name.endswith(".yaml") or name.endswith("metadata.yaml"):
                continue
            config = yaml.safe_load(bundle.read(name))
            if isinstance(config.get("query_context"), str):
                config["query_context"] = json.loads(config["query_context"])
            configs[str(config["uuid"])] = config
    return configs


def with_instance_ids(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """Ours with the ids only the Superset instance knows (dataset id, chart ids) taken from theirs."""
    ours = copy.deepcopy(ours)
    query_context = ours.get("query_context")
    if isinstance(query_context, dict) and isinstance(theirs.get("query_context"), dict):
        query_context["datasource"] = theirs["query_context"].get("datasource")
        query_context.get("form_data", {})["datasource"] = (
            theirs["query_context"].get("form_data", {}).get("datasource")
        )
    if "position" in ours:
        local = {meta["uuid"]: meta.get("chartId") for meta in _chart_metas(ours["position"])}
        real = {meta["uuid"]: meta.get("chartId") for meta in _chart_metas(theirs.get("position", {}))}
        to_real = {local[uuid]: real.get(uuid) for uuid in local}
        for meta in _chart_metas(ours["position"]):
            meta["chartId"] = real.get(meta["uuid"])
        metadata = ours.get("metadata", {})
        for native_filter in metadata.get("native_filter_configuration", []):
            scope = native_filter.get("scope", {})
            scope["excluded"] = [to_real.get(chart_id) for chart_id in scope.get("excluded", [])]
        if "timed_refresh_immune_slices" in metadata:
            metadata["timed_refresh_immune_slices"] = [
                to_real.get(chart_id) for chart_id in metadata["timed_refresh_immune_slices"]
            ]
    return ours


def _chart_metas(position: dict[str, Any]) -> list[dict[str, Any]]:
    return [item["meta"] for item in position.values() if isinstance(item, dict) and item.get("type") == "CHART"]


def diff_config(ours: Any, theirs: Any, path: str) -> list[str]:
    """Every place where Superset's value differs from ours.

    Keys only Superset has are ignored (it adds defaults), so deleting a key from an asset file is not seen:
    set it to its empty value instead, or force an import. Lists of named items (columns, metrics, native
    filters) are matched by name; Superset may have more columns than we list (the refresh adds them).
    """
    if isinstance(ours, dict):
        if not isinstance(theirs, dict) or (not ours and theirs):
            return [f"{path}: {_short(theirs)} != {_short(ours)}"]
        found = []
        for key, value in ours.items():
            if key in NOT_EXPORTED:
                continue
            if key not in theirs:
                if value not in (None, "", [], {}):
                    found.append(f"{path}.{key}: missing")
                continue
            found += diff_config(value, theirs[key], f"{path}.{key}")
        return found
    if isinstance(ours, list) and ours and all(isinstance(item, dict) for item in ours):
        name = next((k for k in ("column_name", "metric_name", "id") if all(k in item for item in ours)), None)
        if name and isinstance(theirs, list):
            by_name = {item.get(name): item for item in theirs if isinstance(item, dict)}
            found = []
            for item in ours:
                if item[name] not in by_name:
                    found.append(f"{path}[{item[name]}]: missing")
                else:
                    found += diff_config(item, by_name[item[name]], f"{path}[{item[name]}]")
            if name != "column_name":
                found += [f"{path}[{extra}]: not in the assets" for extra in by_name.keys() - {i[name] for i in ours}]
            return found
    if isinstance(ours, list):
        if not isinstance(theirs, list) or len(theirs) != len(ours):
            return [f"{path}: {_short(theirs)} != {_short(ours)}"]
        return [d for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) for d in diff_config(a, b, f"{path}[{i}]")]
    if ours != theirs:
        return [f"{path}: {_short(theirs)} != {_short(ours)}"]
    return []


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
