"""How asset files are compared with Superset's export (no service needed)."""

from __future__ import annotations

from taxi_anomaly.serving.compare import diff_config, with_instance_ids


def test_equal_values_and_keys_only_superset_has_are_no_difference():
    ours = {"slice_name": "Top anomalies", "params": {"row_limit": 25}}
    theirs = {"slice_name": "Top anomalies", "params": {"row_limit": 25, "added_by_superset": True}, "id": 4}
    assert diff_config(ours, theirs, "charts/t.yaml") == []


def test_changed_and_missing_values_are_named_by_their_path():
    ours = {"params": {"row_limit": 25, "metrics": ["a", "b"], "colors": {"x": "#fff"}}, "description": "d"}
    theirs = {"params": {"row_limit": 10, "metrics": ["a"], "colors": {}}}
    assert diff_config(ours, theirs, "c.yaml") == [
        "c.yaml.params.row_limit: 10 != 25",
        "c.yaml.params.metrics: ['a'] != ['a', 'b']",
        "c.yaml.params.colors.x: missing",
        "c.yaml.description: missing",
    ]


def test_an_emptied_mapping_differs_from_a_filled_one():
    assert diff_config({"label_colors": {}}, {"label_colors": {"Trips": "#f00"}}, "d") == [
        "d.label_colors: {'Trips': '#f00'} != {}"
    ]


def test_named_items_match_by_name_and_extra_columns_are_allowed_but_extra_filters_are_not():
    ours = {
        "columns": [{"column_name": "a", "type": "BIGINT"}],
        "native_filter_configuration": [{"id": "F1", "name": "Month"}],
    }
    theirs = {
        "columns": [{"column_name": "b", "type": "VARCHAR"}, {"column_name": "a", "type": "VARCHAR"}],
        "native_filter_configuration": [{"id": "F1", "name": "Month"}, {"id": "F2", "name": "Extra"}],
    }
    assert diff_config(ours, theirs, "x") == [
        "x.columns[a].type: 'VARCHAR' != 'BIGINT'",
        "x.native_filter_configuration[F2]: not in the assets",
    ]


def test_instance_ids_are_taken_from_superset_before_comparing():
    """Local chart numbers in the dashboard file map to Superset's ids through the charts' uuids."""
    ours = {
        "position": {"CHART-a": {"type": "CHART", "meta": {"chartId": 1, "uuid": "u-a"}}},
        "metadata": {"native_filter_configuration": [{"id": "F", "scope": {"excluded": [1]}}]},
    }
    theirs = {
        "position": {"CHART-a": {"type": "CHART", "meta": {"chartId": 57, "uuid": "u-a"}}},
        "metadata": {"native_filter_configuration": [{"id": "F", "scope": {"excluded": [57]}}]},
    }
    assert diff_config(with_instance_ids(ours, theirs), theirs, "d") == []
    theirs["metadata"]["native_filter_configuration"][0]["scope"]["excluded"] = []
    assert diff_config(with_instance_ids(ours, theirs), theirs, "d") == [
        "d.metadata.native_filter_configuration[F].scope.excluded: [] != [57]"
    ]
