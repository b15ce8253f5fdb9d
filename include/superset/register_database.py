"""Register the dashboards' Trino database in Superset, with its password, outside every logged request.

Run with Superset's own Python (the local platform does it at start; on Kubernetes the same command runs in the
Superset pod, docs/deploy-kubernetes.md step 8):

    python register_database.py ASSET_FILE < uri.txt

ASSET_FILE is the database asset (include/superset/assets/databases/trino.yaml): the database gets its name,
uuid and `extra`, so the assets import later finds it by uuid and keeps its password (Superset reuses the stored
password of a database it already has), and the import never carries one. The SQLAlchemy URI with the password
comes on stdin, not in argv (readable by every local user in /proc/*/cmdline). Rows of Superset's action log that
hold a `passwords` form field (imports made before this) are deleted.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import yaml


def register(asset_file: Path, uri: str) -> str:
    from superset.app import create_app

    config = yaml.safe_load(asset_file.read_text())
    app = create_app()
    with app.app_context():
        from superset import db  # the models need the initialised app
        from superset.models.core import Database, Log

        database = db.session.query(Database).filter_by(uuid=uuid.UUID(str(config["uuid"]))).one_or_none()
        database = database or db.session.query(Database).filter_by(database_name=config["database_name"]).first()
        created = database is None
        if database is None:
            database = Database(database_name=config["database_name"])
            db.session.add(database)
        database.database_name = config["database_name"]
        database.uuid = uuid.UUID(str(config["uuid"]))
        database.extra = json.dumps(config.get("extra") or {})
        database.set_sqlalchemy_uri(uri)
        purged = db.session.query(Log).filter(Log.json.like('%"passwords"%')).delete(synchronize_session=False)
        db.session.commit()
    return f"database {config['database_name']!r} {'created' if created else 'updated'}; {purged} log rows purged"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    print(register(Path(sys.argv[1]), sys.stdin.read().strip()))
