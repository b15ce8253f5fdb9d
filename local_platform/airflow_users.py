"""Create or update Airflow's FAB users from a JSON list on stdin (run by the Airflow service in its venv).

Input: [{"username", "password", "role", "firstname", "lastname", "email"}, ...]. A missing user is created; an
existing one gets the listed role as its only role and the listed password. The passwords travel on stdin, never
in argv (readable by every local user in /proc/*/cmdline) nor in a file.
"""

from __future__ import annotations

import json
import sys


def sync_users(users: list[dict[str, str]]) -> list[str]:
    """Make the FAB user table hold exactly these logins and roles; returns one line per user."""
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder
    from werkzeug.security import check_password_hash

    done = []
    with get_application_builder() as appbuilder:
        sm = appbuilder.sm
        for spec in users:
            role = sm.find_role(spec["role"])
            if role is None:
                raise SystemExit(f"Airflow user {spec['username']}: no role {spec['role']!r} in FAB")
            user = sm.find_user(username=spec["username"])
            if user is None:
                created = sm.add_user(
                    spec["username"], spec["firstname"], spec["lastname"], spec["email"], role, spec["password"]
                )
                if not created:
                    raise SystemExit(f"Airflow user {spec['username']}: FAB could not create it")
                done.append(f"{spec['username']}: created with role {spec['role']}")
                continue
            changed = []
            if [r.name for r in user.roles] != [spec["role"]]:
                user.roles = [role]
                sm.update_user(user)
                changed.append(f"role {spec['role']}")
            if not check_password_hash(user.password, spec["password"]):
                sm.reset_password(user.id, spec["password"])
                changed.append("password")
            done.append(f"{spec['username']}: {'updated ' + ', '.join(changed) if changed else 'unchanged'}")
    return done


if __name__ == "__main__":
    for line in sync_users(json.load(sys.stdin)):
        print(line)
