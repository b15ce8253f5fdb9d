"""Every key a values file sets exists in the chart version it targets (as recorded in chart_keys.yaml).

Stands in for what `helm install` cannot tell either: Helm accepts unknown keys silently, so a misspelt or
outdated key would simply have no effect in the cluster.
"""

from __future__ import annotations

import pytest

from tests.deploy.deployment import CHARTS, HELM_VALUES, chart_keys, values


def set_paths(node: dict, open_paths: set[str], prefix: str = "") -> list[str]:
    """Dotted paths of the keys a values file sets; stops at leaves (scalars, lists) and at open maps."""
    paths = []
    for key, value in node.items():
        path = f"{prefix}{key}"
        if path in open_paths or not isinstance(value, dict) or not value:
            paths.append(path)
        else:
            paths.extend(set_paths(value, open_paths, f"{path}."))
    return paths


def unverified_keys(chart_values: dict, recorded: dict) -> list[str]:
    keys, open_paths = set(recorded["keys"]), set(recorded.get("open", []))
    return [
        path
        for path in set_paths(chart_values, open_paths)
        if path not in keys and path not in open_paths and not any(path.startswith(f"{o}.") for o in open_paths)
    ]


@pytest.mark.parametrize("chart", CHARTS)
def test_values_set_only_keys_verified_upstream(chart):
    recorded = chart_keys()[chart]
    assert unverified_keys(values(chart), recorded) == [], (
        f"helm-values/{chart}.yaml sets keys not verified in {recorded['values_source']}: "
        "check them there and list them in tests/deploy/chart_keys.yaml"
    )


def test_the_check_catches_a_misspelt_key():
    recorded = chart_keys()["minio"]
    assert unverified_keys({"persistence": {"sise": "1Gi"}, "resources": {"requests": {"cpu": 1}}}, recorded) == [
        "persistence.sise"
    ]


@pytest.mark.parametrize("chart", CHARTS)
def test_values_file_header_names_the_recorded_chart_version(chart):
    """The version in the values file's install command is the one the keys were checked against."""
    recorded = chart_keys()[chart]
    header = (HELM_VALUES / f"{chart}.yaml").read_text().split("\n\n", 1)[0]
    command = f"{recorded['chart']} --version {recorded['version']}"
    assert command in header, f"helm-values/{chart}.yaml does not install {recorded['chart']} {recorded['version']}"


def test_readme_records_the_chart_versions():
    readme = (HELM_VALUES / "README.md").read_text()
    for chart, recorded in chart_keys().items():
        row = f"| {recorded['chart']} | {recorded['version']} |"
        assert row in readme, f"helm-values/README.md lacks the row for {chart}: {row}"
