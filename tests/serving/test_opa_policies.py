"""The Rego policies in include/opa/: their own `opa test` unit tests pass, they compile strictly and are formatted."""

from __future__ import annotations

import re
import subprocess

import pytest

from local_platform import artifacts
from local_platform.config import load_config
from local_platform.services.opa import HEALTH_CLIENT, POLICY_DIR, TRINO_CLIENT


@pytest.fixture(scope="module")
def opa() -> str:
    binary = load_config().bin_dir / artifacts.OPA.name
    assert binary.exists(), f"{binary} is missing: run `make setup`"
    return str(binary)


def test_opa_unit_tests_pass(opa):
    run = subprocess.run([opa, "test", str(POLICY_DIR), "-v"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    passed, total = map(int, re.search(r"^PASS: (\d+)/(\d+)$", run.stdout, re.MULTILINE).groups())
    assert passed == total and total >= 15, run.stdout
    # the item-1 cases of issue 16 are among them
    for name in ("test_readers_run_no_table_procedure", "test_readers_set_no_data_changing_session_property"):
        assert re.search(rf"{name}: PASS", run.stdout), run.stdout


def test_policies_compile_strictly_and_are_formatted(opa):
    check = subprocess.run([opa, "check", "--strict", str(POLICY_DIR)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    unformatted = subprocess.run([opa, "fmt", "--list", str(POLICY_DIR)], capture_output=True, text=True, timeout=60)
    assert unformatted.stdout.strip() == "", f"run `opa fmt -w include/opa`: {unformatted.stdout}"


def test_the_authz_policy_names_the_certificates_the_platform_issues():
    authz = (POLICY_DIR / "system" / "authz.rego").read_text()
    assert f'trino_identity := "CN={TRINO_CLIENT}"' in authz
    assert f'health_identity := "CN={HEALTH_CLIENT}"' in authz
