"""The families and specs as a Markdown table (docs/detectors.md holds it; a test checks it is current)."""

from __future__ import annotations

from taxi_anomaly.detectors import families
from taxi_anomaly.detectors.spec import SPEC_DIR, load_spec, spec_names


def families_table() -> str:
    lines = ["| family | what it is | parameters (default, bounds) |", "| --- | --- | --- |"]
    for name, family in sorted(families().items()):
        params = "; ".join(
            f"`{p['name']}` {p['default']}"
            + (f" ({p['low']}-{p['high']})" if "low" in p else f" ({'/'.join(p['choices'])})" if "choices" in p else "")
            for p in family.Params.describe()
        )
        lines.append(f"| `{name}` | {family.description} | {params} |")
    return "\n".join(lines)


def specs_table() -> str:
    lines = [
        "| spec | family | city threshold | borough threshold | zone threshold | dead zone |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name in spec_names(SPEC_DIR):
        by = {g: load_spec(name, g) for g in ("city", "borough", "zone")}
        cells = [f"{s.threshold.rule} {s.threshold.value:g}" for s in by.values()]
        lines.append(f"| `{name}` | `{by['city'].family}` | {' | '.join(cells)} | {by['city'].dead_zone_sd:g} sd |")
    return "\n".join(lines)
