"""The ConfigMap of OPA's policies on Kubernetes (helm-values/manifests/opa-policies.yaml), built from include/opa/.

    .venv/bin/python -m tests.deploy.opa_policies > helm-values/manifests/opa-policies.yaml

tests/deploy/test_opa_deploy.py fails when the committed file is not what this prints (a policy changed and the
file was not rebuilt)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
POLICY_DIR = REPO / "include" / "opa"
NAME = "tap-opa-policies"


def policy_files() -> dict[str, str]:
    """ConfigMap key (the path under include/opa/ with '/' as '.') -> Rego text; the tests stay out."""
    return {
        ".".join(path.relative_to(POLICY_DIR).parts): path.read_text()
        for path in sorted(POLICY_DIR.rglob("*.rego"))
        if not path.name.endswith("_test.rego")
    }


def configmap_yaml() -> str:
    lines = [
        "# OPA's policies: generated from include/opa/ by `python -m tests.deploy.opa_policies` (do not edit here).",
        "#   kubectl -n taxi-anomaly apply -f helm-values/manifests/opa-policies.yaml",
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata:",
        f"  name: {NAME}",
        "  labels:",
        "    app.kubernetes.io/name: tap-opa",
        "    app.kubernetes.io/part-of: taxi-anomaly-platform",
        "data:",
    ]
    for key, text in policy_files().items():
        lines.append(f"  {key}: |")
        lines += [f"    {line}" if line else "" for line in text.rstrip("\n").split("\n")]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(configmap_yaml(), end="")
