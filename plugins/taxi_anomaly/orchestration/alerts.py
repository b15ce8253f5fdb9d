"""The on-failure callback of every task: one alert naming the DAG, task, month and error, and where it goes.

Always logged (ERROR, logger `taxi_anomaly.alerts`). Optionally, read when the alert fires (not at parse time):

- Airflow Variable `tap_alert_webhook_url`: the alert is POSTed there as JSON (Slack/Teams/Mattermost-style
  incoming webhooks accept the `text` field);
- Airflow Variable `tap_alert_email_to` (comma separated): the alert is mailed through the SMTP connection
  `tap_smtp` (Variable `tap_alert_smtp_conn_id` to use another).

A failing alert channel is logged and never hides the task's own failure.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from dataclasses import asdict, dataclass
from typing import Any

log = logging.getLogger("taxi_anomaly.alerts")

WEBHOOK_VARIABLE = "tap_alert_webhook_url"
EMAIL_VARIABLE = "tap_alert_email_to"
SMTP_CONN_VARIABLE = "tap_alert_smtp_conn_id"
DEFAULT_SMTP_CONN_ID = "tap_smtp"


@dataclass(frozen=True)
class Alert:
    dag_id: str
    task_id: str
    run_id: str
    map_index: int
    try_number: int
    error: str
    target: str | None = None
    log_url: str | None = None

    @property
    def title(self) -> str:
        where = f"{self.dag_id}.{self.task_id}" + (f" [{self.target}]" if self.target else "")
        return f"[taxi-anomaly] FAILED {where} (try {self.try_number})"

    @property
    def text(self) -> str:
        lines = [self.title, f"run: {self.run_id}", f"error: {self.error}"]
        if self.log_url:
            lines.append(f"log: {self.log_url}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "title": self.title, "text": self.text}


def alert_from_context(context: Any) -> Alert:
    ti = context.get("task_instance") or context.get("ti")
    error = context.get("exception")
    rendered = getattr(ti, "rendered_map_index", None)
    return Alert(
        dag_id=str(getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")),
        task_id=getattr(ti, "task_id", "?"),
        run_id=str(context.get("run_id") or getattr(ti, "run_id", "?")),
        map_index=int(getattr(ti, "map_index", -1) if getattr(ti, "map_index", None) is not None else -1),
        try_number=int(getattr(ti, "try_number", 0) or 0),
        error=f"{type(error).__name__}: {error}" if error is not None else "unknown (see the task log)",
        target=rendered or None,
        log_url=getattr(ti, "log_url", None),
    )


def post_webhook(url: str, alert: Alert, timeout: float = 10.0) -> int:
    body = json.dumps({"text": alert.text, "alert": alert.as_dict()}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - configured URL
        return int(response.status)


def send_email(recipients: list[str], alert: Alert, conn_id: str) -> None:
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    with SmtpHook(smtp_conn_id=conn_id) as hook:
        hook.send_email_smtp(to=recipients, subject=alert.title, html_content=f"<pre>{alert.text}</pre>")


def _variable(name: str) -> str | None:
    try:
        from airflow.sdk import Variable

        value = Variable.get(name, default=None)
    except Exception as err:  # no Variable backend reachable: alerting must still log
        log.warning("could not read Airflow Variable %s: %s", name, err)
        return None
    return None if value is None else str(value)


def deliver(alert: Alert, webhook_url: str | None, email_to: str | None, smtp_conn_id: str) -> list[str]:
    """Log the alert and send it to the configured channels; returns the channels that received it."""
    log.error("%s", alert.text)
    delivered = ["log"]
    if webhook_url:
        try:
            post_webhook(webhook_url, alert)
            delivered.append("webhook")
        except Exception as err:
            log.error("alert webhook %s failed: %s", webhook_url, err)
    if email_to:
        try:
            send_email([a.strip() for a in email_to.split(",") if a.strip()], alert, smtp_conn_id)
            delivered.append("email")
        except Exception as err:
            log.error("alert e-mail to %s failed: %s", email_to, err)
    return delivered


def on_failure_alert(context: Any) -> list[str]:
    """on_failure_callback of every task of the platform's DAGs."""
    alert = alert_from_context(context)
    return deliver(
        alert,
        _variable(WEBHOOK_VARIABLE),
        _variable(EMAIL_VARIABLE),
        _variable(SMTP_CONN_VARIABLE) or DEFAULT_SMTP_CONN_ID,
    )
