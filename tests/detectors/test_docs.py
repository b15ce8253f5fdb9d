"""docs/detectors.md's tables are the code's: a family or spec added, removed or changed updates them."""

from __future__ import annotations

import re

from local_platform.config import REPO_ROOT
from taxi_anomaly.detectors.catalogue import families_table, specs_table


def section(name: str) -> str:
    text = (REPO_ROOT / "docs" / "detectors.md").read_text()
    match = re.search(rf"<!-- {name}: [^>]*-->\n(.*?)\n<!-- /{name} -->", text, re.S)
    assert match, f"docs/detectors.md has no generated {name} section"
    return match.group(1)


def test_the_families_and_specs_tables_are_current():
    assert section("families") == families_table(), "regenerate: taxi_anomaly.detectors.catalogue.families_table()"
    assert section("specs") == specs_table(), "regenerate: taxi_anomaly.detectors.catalogue.specs_table()"
