"""Superset assets kept as code (include/superset/assets): load the YAML, fill in the Trino connection, zip.

The directory has Superset's import layout: metadata.yaml, databases/, datasets/<database>/, charts/,
dashboards/. Every object carries a fixed uuid, which is how an import finds and overwrites it: importing the
same files again changes nothing and duplicates nothing.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taxi_anomaly.serving.trino_client import TrinoSettings

DEFAULT_ASSETS_DIR = Path(__file__).resolve().parents[3] / "include" / "superset" / "assets"
BUNDLE_ROOT = "taxi_anomaly_assets"  # Superset expects every file of the zip under one top-level folder
KINDS = ("databases", "datasets", "charts", "dashboards")


@dataclass(frozen=True)
class Assets:
    """The parsed asset files, keyed by their path relative to the assets directory."""

    files: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, directory: Path = DEFAULT_ASSETS_DIR) -> Assets:
        import yaml

        directory = Path(directory)
        if not (directory / "metadata.yaml").is_file():
            raise FileNotFoundError(f"{directory} is not a Superset assets directory (no metadata.yaml)")
        files = {
            path.relative_to(directory).as_posix(): yaml.safe_load(path.read_text())
            for path in sorted(directory.rglob("*.yaml"))
        }
        return cls(files)

    def of_kind(self, kind: str) -> dict[str, dict[str, Any]]:
        """The configs of one kind (databases, datasets, charts, dashboards) by file path."""
        return {path: config for path, config in self.files.items() if path.startswith(f"{kind}/")}

    def with_trino(self, trino: TrinoSettings) -> Assets:
        """The same assets with each database's URI filled from the Trino connection (the password stays masked:
        Superset keeps the one registered for the database, see refresh.import_assets)."""
        values = {"login": trino.user, "host": trino.host, "port": trino.port, "catalog": trino.catalog}
        files = dict(self.files)
        for path, config in self.of_kind("databases").items():
            files[path] = {**config, "sqlalchemy_uri": config["sqlalchemy_uri"].format(**values)}
        return Assets(files)

    def to_zip(self) -> bytes:
        """The bundle POST /api/v1/assets/import/ takes (a chart's query_context becomes the JSON text it wants)."""
        import yaml

        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
            for path, config in self.files.items():
                if isinstance(config.get("query_context"), dict):
                    config = {**config, "query_context": json.dumps(config["query_context"])}
                bundle.writestr(f"{BUNDLE_ROOT}/{path}", yaml.safe_dump(config, sort_keys=False))
        return buffer.getvalue()

    def dashboard_slugs(self) -> list[str]:
        return [config["slug"] for config in self.of_kind("dashboards").values()]
