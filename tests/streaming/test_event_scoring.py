"""Per-event scoring end to end on the platform: KDD Cup 99 records replayed into Kafka and scored by the
promoted model, in the default mode, as a real process killed with -9 while events arrive and restarted: every
event the model flags in batch is alerted (no loss, no other alert), a re-published alert is the same alert, and
malformed events are dead letters with their reason. Every mode runs the same query body
(tests/spark_jobs/test_event_stream.py); bench/bench_event_latency.py runs all three."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from anomaly_detection.event_models import EventFamily, fit_event_model
from anomaly_detection.event_stream import DEFAULT_MODE
from taxi_anomaly import kdd
from taxi_anomaly.streaming.replay import event_id
from tests.streaming.event_scenario import SOURCE, EventScenario

pytestmark = pytest.mark.platform

EVENTS_PER_PHASE = 3_000
RATE = 1_500  # events/s: each phase lasts 2 s


@pytest.fixture(scope="module")
def kdd_frame():
    path = kdd.default_file()
    if not path.exists():
        pytest.fail(f"the KDD Cup 99 file is not at {path} (TAP_SHARED_DATA_DIR)")
    return kdd.read_kdd(path)


def test_alerts_survive_a_kill_and_match_the_batch_flags(platform, spark, tmp_path, kdd_frame):
    normal = kdd_frame[kdd_frame[kdd.LABEL] == kdd.NORMAL].sample(20_000, random_state=1)
    model = fit_event_model(normal, EventFamily.ISOLATION_FOREST, seed=1, params={"n_estimators": 50})
    # Two phases of events from the whole file (every category), none of them a training row.
    candidates = np.setdiff1d(np.arange(len(kdd_frame)), kdd_frame.index.get_indexer(normal.index))
    rows = np.random.default_rng(2).choice(candidates, 2 * EVENTS_PER_PHASE, replace=False)
    scores = model.score_numpy(model.inputs_numpy(kdd_frame.iloc[rows]))
    flagged = {
        event_id(SOURCE, int(kdd_frame.index[r])) for r, s in zip(rows, scores, strict=True) if s > model.threshold
    }
    first = {event_id(SOURCE, int(kdd_frame.index[r])) for r in rows[:EVENTS_PER_PHASE]} & flagged

    scenario = EventScenario(platform, spark, tmp_path)
    scenario.create_topics()
    try:
        version = scenario.save_and_promote(model)
        scenario.start_reading()
        scenario.start_job(DEFAULT_MODE.value)
        scenario.wait_running()

        good = json.loads(_one_event(kdd_frame))
        bad = {**good, "event_id": "bad-type", "record": {**good["record"], "src_bytes": "lots"}}
        scenario.produce_raw(
            [("bad-json", b"{not json"), ("bad-id", b'{"seq": 1}'), ("bad-type", json.dumps(bad).encode())]
        )
        scenario.replay(kdd_frame, rows[:EVENTS_PER_PHASE], rate=RATE)
        scenario.wait_for_keys(scenario.alerts, first, timeout=90)

        # Second phase: the job is killed while the events arrive, and started again from its checkpoint.
        replay = threading.Thread(
            target=scenario.replay, args=(kdd_frame, rows[EVENTS_PER_PHASE:]), kwargs={"rate": RATE}
        )
        replay.start()
        time.sleep(1.0)
        scenario.kill_job()
        replay.join()
        scenario.start_job(DEFAULT_MODE.value)
        scenario.wait_for_keys(scenario.alerts, flagged, timeout=180)
        time.sleep(3)  # anything still in flight
    finally:
        scenario.cleanup()

    alerts = scenario.alerts.by_key()
    assert set(alerts) == flagged, f"alerts for {len(set(alerts) - flagged)} events the model does not flag"
    for key, copies in alerts.items():
        assert all(copy == copies[0] for copy in copies), f"{key} was published twice with different content"
        assert copies[0]["model_version"] == version and copies[0]["score"] > model.threshold
    duplicates = sum(len(c) - 1 for c in alerts.values())
    print(f"{len(flagged)} alerts of {len(rows)} events, {duplicates} published again after the kill")

    reasons = {key: value[0]["reason"] for key, value in scenario.dead_letters.by_key().items()}
    assert sorted(reasons.values()) == [
        "no event_id",
        "not a JSON event: unparseable, or none of the event fields",
        "record fields missing or not of their type: src_bytes",
    ], reasons


def _one_event(frame) -> str:
    from taxi_anomaly.streaming.event_replay import kdd_events

    eid, event = next(kdd_events(frame, SOURCE, [0]))
    event["produced_at_ms"] = int(time.time() * 1000)
    return json.dumps(event)
