"""Great Expectations Data Docs pages for the validation results the ingest step wrote (one GX import per call).

validation.py writes each file's result as GX validation result JSON without importing GX (11-14 s per
process); this module loads that JSON into GX's own objects (which checks every expectation configuration
against GX's models) and renders GX's Data Docs page beside it. Airflow calls `render_pages` once per DAG run
for all the run's months (`render_data_docs` task), the ingest CLI once per invocation.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from taxi_anomaly.layout import FileKeys, month_keys
from taxi_anomaly.tlc import YearMonth

if TYPE_CHECKING:
    from taxi_anomaly.ingest.settings import IngestSettings
    from taxi_anomaly.ingest.storage import RawStore

log = logging.getLogger(__name__)


def gx_result(result: dict[str, Any]) -> Any:
    """The GX ExpectationSuiteValidationResult of a result JSON (raises if GX rejects a configuration)."""
    gx_logger = logging.getLogger("great_expectations")
    if gx_logger.level == logging.NOTSET:  # GX logs hundreds of INFO lines on import; keep task logs readable
        gx_logger.setLevel(logging.WARNING)
    from great_expectations.core import ExpectationSuiteValidationResult, ExpectationValidationResult
    from great_expectations.core.expectation_suite import ExpectationSuite

    configs = [item["expectation_config"] for item in result["results"]]
    suite = ExpectationSuite(name=result["suite_name"], expectations=configs)
    items = [
        ExpectationValidationResult(
            success=item["success"],
            expectation_config=expectation.configuration,
            result=item["result"],
            meta=item.get("meta") or {},
            exception_info=item["exception_info"],
        )
        for item, expectation in zip(result["results"], suite.expectations, strict=True)
    ]
    return ExpectationSuiteValidationResult(
        success=result["success"],
        results=items,
        suite_name=result["suite_name"],
        suite_parameters=result.get("suite_parameters") or {},
        statistics=result["statistics"],
        meta=result.get("meta") or {},
    )


def render_page(result: dict[str, Any]) -> str:
    """GX's Data Docs HTML page of one validation result JSON."""
    suite_result = gx_result(result)
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    html: str = DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(suite_result))
    return html


def render_pages(store: RawStore, bucket: str, keys: list[FileKeys]) -> list[str]:
    """Render the Data Docs page of every file among `keys` that has a result (landed or quarantined).

    Rerendering is harmless (the page is a function of the JSON). Returns the keys of the pages written.
    """
    written = []
    for file_keys in keys:
        pairs = (
            (file_keys.validation_json, file_keys.validation_html),
            (file_keys.quarantine_validation_json, file_keys.quarantine_validation_html),
        )
        for json_key, html_key in pairs:
            if not store.exists(bucket, json_key):
                continue
            try:
                page = render_page(store.get_json(bucket, json_key))
            except Exception as err:
                raise RuntimeError(f"{store.uri(bucket, json_key)}: cannot render its Data Docs page: {err}") from err
            store.put_bytes(bucket, html_key, page.encode(), "text/html")
            log.info("Data Docs page %s", store.uri(bucket, html_key))
            written.append(html_key)
    return written


def render_months(store: RawStore, settings: IngestSettings, months: list[tuple[str, str | YearMonth]]) -> list[str]:
    """`render_pages` for (trip type, month) pairs, in the settings' raw bucket and key prefix."""
    keys = [month_keys(trip_type, YearMonth.parse(str(month)), settings.key_prefix) for trip_type, month in months]
    return render_pages(store, settings.raw_bucket, keys)
