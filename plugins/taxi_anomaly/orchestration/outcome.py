"""The outcome check of a backfill: a run in which no month was published (all downloads skipped) fails.

Every month answering "not published" is how a wrong range, a wrong trip type or a source that is not the TLC's
CDN (anything answering 404) looks; such a run must not end as a success with nothing landed.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import TriggerRule, get_current_context, task

from taxi_anomaly.orchestration.policies import policy

DOWNLOAD_TASK = "month.download"


def nothing_published_message(params: dict[str, Any], states: dict[str, int]) -> str | None:
    """The failure message when no download of the run succeeded, else None."""
    if states.get("success", 0):
        return None
    counts = ", ".join(f"{n} {state}" for state, n in sorted(states.items())) or "no download task ran"
    source = params.get("tlc_base_url") or "the TLC's CDN"
    return (
        f"no month of {', '.join(params.get('trip_types', []))} {params.get('first_month')}.."
        f"{params.get('last_month')} was published at {source} ({counts}): nothing landed. Check the range, the "
        "trip types and the source."
    )


@task(task_id="require_a_published_month", trigger_rule=TriggerRule.ALL_DONE, **policy("record"))
def require_a_published_month(params: dict[str, Any] | None = None) -> dict[str, int]:
    """Fails the run if no month's download succeeded; returns the downloads' states by count."""
    from airflow.sdk.exceptions import AirflowFailException

    context = get_current_context()
    ti, run_id = context["ti"], context["run_id"]
    found = ti.get_task_states(dag_id=ti.dag_id, task_ids=[DOWNLOAD_TASK], run_ids=[run_id])
    states: dict[str, int] = {}
    for state in found.get(run_id, {}).values():
        states[str(state)] = states.get(str(state), 0) + 1
    message = nothing_published_message(params or {}, states)
    if message:
        raise AirflowFailException(message)
    return states
