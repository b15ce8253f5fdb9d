"""Per-event scoring's query body on static frames shaped like Kafka rows: which events are dead letters and why,
which are alerts and what an alert says, and that the native expressions and the pandas UDF (the micro-batch
fallback) publish the same messages."""

from __future__ import annotations

import json

import numpy as np
import pytest

from anomaly_detection.event_models import EventFamily, fit_event_model
from anomaly_detection.event_stream import parse_events, record_schema_of, scored_messages
from taxi_anomaly import kdd
from taxi_anomaly.streaming.event_replay import kdd_events

ALERTS, DEAD = "t.alerts", "t.dead"


@pytest.fixture(scope="module")
def frame():
    path = kdd.default_file()
    if not path.exists():
        pytest.skip(f"the KDD Cup 99 file is not at {path}")
    return kdd.read_kdd(path, nrows=60_000).iloc[::15]  # 4,000 rows: normal and attack traffic


@pytest.fixture(scope="module")
def model(frame):
    normal = frame[frame[kdd.LABEL] == kdd.NORMAL]
    return fit_event_model(normal, EventFamily.ISOLATION_FOREST, seed=5, params={"n_estimators": 20})


def kafka_rows(spark, values: list[bytes]):
    rows = [(value, i % 2, i) for i, value in enumerate(values)]
    return spark.createDataFrame(rows, "value binary, partition int, offset long")


def event_bytes(frame) -> tuple[list[str], list[bytes]]:
    ids, values = [], []
    for eid, event in kdd_events(frame, kdd.FILE_NAME):
        event["produced_at_ms"] = 1_700_000_000_000
        ids.append(eid)
        values.append(json.dumps(event).encode())
    return ids, values


def test_malformed_events_are_dead_letters_naming_what_is_wrong(spark, frame):
    _, values = event_bytes(frame.iloc[:2])
    good = json.loads(values[0])
    wrong_type = {**good, "event_id": "e-wrong", "record": {**good["record"], "src_bytes": "lots", "count": None}}
    no_record = {k: v for k, v in good.items() if k != "record"} | {"event_id": "e-no-record"}
    raw = [
        values[0],
        b"not json at all",
        b'{"seq": 3}',
        json.dumps(wrong_type).encode(),
        json.dumps(no_record).encode(),
    ]
    parsed = parse_events(kafka_rows(spark, raw), record_schema_of(kdd.FEATURE_SET)).collect()
    errors = [row["error"] for row in parsed]
    assert errors == [
        None,
        "not a JSON object",
        "no event_id",
        "record fields missing or not of their type: src_bytes, count",
        "no record object",
    ]
    assert parsed[0]["src_bytes"] == good["record"]["src_bytes"] and parsed[0]["service"] == good["record"]["service"]


def test_unknown_feature_set_is_named():
    with pytest.raises(ValueError, match="feature set 'netflow' has no event schema"):
        record_schema_of("netflow")


def messages_of(spark, model, values: list[bytes], native: bool) -> list[tuple[str, str, dict]]:
    parsed = parse_events(kafka_rows(spark, values), record_schema_of(kdd.FEATURE_SET))
    out = scored_messages(parsed, model, "v-test", ALERTS, DEAD, native=native).collect()
    return sorted((row["topic"], row["key"], json.loads(row["value"])) for row in out)


def test_alerts_are_the_batch_flags_and_the_udf_fallback_publishes_the_same(spark, frame, model):
    ids, values = event_bytes(frame)
    values.append(b"{broken")
    native = messages_of(spark, model, values, native=True)
    fallback = messages_of(spark, model, values, native=False)

    expected_scores = model.score_numpy(model.inputs_numpy(frame))
    flagged = {eid for eid, s in zip(ids, expected_scores, strict=True) if s > model.threshold}
    assert 0 < len(flagged) < len(ids)
    alerts = {key: value for topic, key, value in native if topic == ALERTS}
    assert set(alerts) == flagged, "the stream flags exactly the events the model flags in batch"
    dead = [value for topic, _, value in native if topic == DEAD]
    assert [d["reason"] for d in dead] == ["not a JSON event: unparseable, or none of the event fields"]
    assert dead[0]["value"] == "{broken"

    by_id = dict(zip(ids, expected_scores, strict=True))
    for eid, alert in alerts.items():
        assert alert["score"] == pytest.approx(by_id[eid], abs=1e-9)
        assert alert["threshold"] == model.threshold and alert["model_version"] == "v-test"
        assert alert["feature_set"] == kdd.FEATURE_SET and alert["family"] == EventFamily.ISOLATION_FOREST.value
        assert alert["produced_at_ms"] == 1_700_000_000_000
        deviations = [abs(f["deviation"]) for f in alert["top_features"]]
        assert deviations == sorted(deviations, reverse=True) and all(d >= 1 for d in deviations)
    assert sum(bool(a["top_features"]) for a in alerts.values()) > 0.9 * len(alerts)

    assert [(t, k) for t, k, _ in fallback] == [(t, k) for t, k, _ in native]
    for (_, _, a), (_, _, b) in zip(native, fallback, strict=True):
        if "score" in a:
            assert np.isclose(a["score"], b["score"], rtol=0, atol=1e-9)
            assert a["top_features"] == b["top_features"]
