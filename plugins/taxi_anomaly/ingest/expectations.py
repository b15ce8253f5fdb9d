"""The expectation types of the raw-zone suites, evaluated on arrow tables with pyarrow compute (vectorised, no
pandas copy, no per-chunk Great Expectations call).

The suites stay Great Expectations suites (include/great_expectations/expectations/*.json) and the results are
GX validation results with GX Data Docs (validation.py); only the counting is done here, with GX's semantics:
a column-map expectation ignores nulls (`missing_count`) and applies `mostly` to the share of non-null values
that pass; `..._to_not_be_null` counts the nulls; bounds are inclusive unless `strict_min` / `strict_max`.
tests/ingest/test_validation.py checks that every count equals what GX's own pandas engine finds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

PARTIAL_VALUES = 20  # unexpected values kept per expectation, as GX's SUMMARY result format


@dataclass
class Part:
    """One expectation's outcome on one chunk, with the fields of a GX ExpectationValidationResult."""

    success: bool
    result: dict[str, Any] = field(default_factory=dict)
    exception_info: dict[str, Any] = field(
        default_factory=lambda: {"raised_exception": False, "exception_message": None, "exception_traceback": None}
    )


def resolve(kwargs: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """The kwargs with every {"$PARAMETER": name} replaced by its run-time value."""
    return {
        key: parameters[value["$PARAMETER"]] if isinstance(value, dict) and "$PARAMETER" in value else value
        for key, value in kwargs.items()
    }


def evaluate(expectation_type: str, kwargs: dict[str, Any], table: pa.Table, offset: int) -> Part:
    """One expectation on one chunk (`offset`: the chunk's first row, for the unexpected row indices)."""
    column = kwargs.get("column")
    if expectation_type == "expect_table_row_count_to_be_between":
        return Part(True, {"observed_value": table.num_rows})
    if expectation_type == "expect_column_to_exist":
        return Part(column in table.column_names, {})
    if column not in table.column_names:
        return Part(
            False,
            exception_info={
                "raised_exception": True,
                "exception_message": f"column {column!r} is not in the file",
                "exception_traceback": f"column {column!r} is not in the file",  # Data Docs show this text
            },
        )
    values = table[column]
    if expectation_type == "expect_column_values_to_be_of_type":
        observed = _numpy_kind(values.type)
        return Part(observed == kwargs["type_"], {"observed_value": observed})
    if expectation_type == "expect_column_values_to_not_be_null":
        return _not_null(values, offset)
    unexpected = _MAPS[expectation_type](values, kwargs)
    return _column_map(values, unexpected, offset)


def supported(expectation_type: str) -> bool:
    return expectation_type in SUPPORTED


def _numpy_kind(data_type: pa.DataType) -> str:
    """The pandas dtype GX's pandas engine sees for a canonical column (integers become float64 there)."""
    if pa.types.is_integer(data_type) or pa.types.is_floating(data_type):
        return "float64"
    if pa.types.is_timestamp(data_type):
        return "datetime64"
    return "object"


def _between(values: pa.ChunkedArray, kwargs: dict[str, Any]) -> pa.ChunkedArray:
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    below = pc.less_equal if kwargs.get("strict_min") else pc.less
    above = pc.greater_equal if kwargs.get("strict_max") else pc.greater
    outside = pa.chunked_array([pa.repeat(False, len(values))])
    if low is not None:
        outside = pc.or_(outside, below(values, pa.scalar(low, _bound_type(values.type))))
    if high is not None:
        outside = pc.or_(outside, above(values, pa.scalar(high, _bound_type(values.type))))
    return outside


def _bound_type(column_type: pa.DataType) -> pa.DataType:
    return column_type if pa.types.is_timestamp(column_type) else pa.float64()


def _in_set(values: pa.ChunkedArray, kwargs: dict[str, Any]) -> pa.ChunkedArray:
    allowed = pa.array(kwargs["value_set"])
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        values, allowed = values.cast(pa.float64()), allowed.cast(pa.float64())
    return pc.and_(pc.is_valid(values), pc.invert(pc.is_in(values, value_set=allowed)))  # nulls are missing


_MAPS: dict[str, Callable[[pa.ChunkedArray, dict[str, Any]], pa.ChunkedArray]] = {
    "expect_column_values_to_be_between": _between,
    "expect_column_values_to_be_in_set": _in_set,
}
SUPPORTED = frozenset(
    {
        *_MAPS,
        "expect_table_row_count_to_be_between",
        "expect_column_to_exist",
        "expect_column_values_to_be_of_type",
        "expect_column_values_to_not_be_null",
    }
)


def _column_map(values: pa.ChunkedArray, unexpected: pa.ChunkedArray, offset: int) -> Part:
    elements, missing = len(values), values.null_count
    flags = pc.fill_null(unexpected, False)
    count = pc.sum(flags).as_py() or 0
    considered = elements - missing
    result = {
        "element_count": elements,
        "missing_count": missing,
        "unexpected_count": count,
        "unexpected_percent": 100 * count / considered if considered else 0.0,
        **_partial(values, flags, count, offset),
    }
    return Part(count == 0, result)


def _not_null(values: pa.ChunkedArray, offset: int) -> Part:
    nulls = values.null_count
    flags = pc.is_null(values)
    result = {
        "element_count": len(values),
        "unexpected_count": nulls,
        "unexpected_percent": 100 * nulls / len(values) if len(values) else 0.0,
        **_partial(values, flags, nulls, offset),
    }
    return Part(nulls == 0, result)


def _partial(values: pa.ChunkedArray, flags: pa.ChunkedArray, count: int, offset: int) -> dict[str, Any]:
    """The first unexpected values and rows, and the most frequent unexpected values (GX's partial lists)."""
    if count == 0:
        return {"partial_unexpected_list": [], "partial_unexpected_index_list": [], "partial_unexpected_counts": []}
    bad = pc.filter(values, flags)
    rows = pc.indices_nonzero(flags.combine_chunks() if isinstance(flags, pa.ChunkedArray) else flags)
    counts = pc.value_counts(bad.combine_chunks() if isinstance(bad, pa.ChunkedArray) else bad).to_pylist()
    counts.sort(key=lambda entry: -entry["counts"])
    return {
        "partial_unexpected_list": bad.slice(0, PARTIAL_VALUES).to_pylist(),
        "partial_unexpected_index_list": [offset + i for i in rows.slice(0, PARTIAL_VALUES).to_pylist()],
        "partial_unexpected_counts": [{"value": e["values"], "count": e["counts"]} for e in counts[:PARTIAL_VALUES]],
    }
