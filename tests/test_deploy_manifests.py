"""The Kubernetes manifests in deploy/kubernetes/: valid against the Kubernetes schemas (strict:
an unknown field is an error), every variable they set is one the service or its tools read,
the values make a configuration the service accepts, and the probes, port and grace period
agree with the app and gunicorn.conf.py."""
from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from pieces_service.config import Config

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
KUBERNETES_VERSION = "1.30.0"  # the oldest release we promise to run on
# Read by gunicorn or the metrics library, not by config.py.
OUTSIDE_CONFIG = {"GUNICORN_CMD_ARGS", "PROMETHEUS_MULTIPROC_DIR"}


def _documents() -> list[dict]:
    return [doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def _kind(kind: str) -> dict:
    (found,) = [doc for doc in _documents() if doc["kind"] == kind]
    return found


def _variables() -> dict[str, str]:
    """Every variable the manifests give the service: the ConfigMap's and the Secret's keys,
    and the containers' own `env`."""
    names = dict(_kind("ConfigMap")["data"])
    names.update(_kind("Secret")["stringData"])
    for kind in ("Deployment", "Job"):
        for container in _kind(kind)["spec"]["template"]["spec"]["containers"]:
            for entry in container.get("env", []):
                # A value from the Secret or ConfigMap is already there under its key.
                names.setdefault(entry["name"], entry.get("value", ""))
    return names


def test_there_are_manifests_for_each_part():
    assert {doc["kind"] for doc in _documents()} == {
        "ConfigMap", "Secret", "Deployment", "Job", "Service", "PodDisruptionBudget"}


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_each_manifest_is_valid_against_the_kubernetes_schemas(path):
    for doc in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_a_field_the_schema_does_not_know_is_caught():
    deployment = _kind("Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_every_variable_is_one_the_service_reads_and_together_they_are_accepted():
    source = (ROOT / "pieces_service" / "config.py").read_text()
    known = set(re.findall(r'"((?:PIECES|DATABASE|WEB|PORT)[A-Z_]*)"', source)) | OUTSIDE_CONFIG
    variables = _variables()
    assert set(variables) <= known, set(variables) - known
    # The example key is a placeholder: the service's own check of the rest must pass.
    env = {k: v for k, v in variables.items() if k not in OUTSIDE_CONFIG}
    env["PIECES_JWT_PUBLIC_KEY"] = _a_public_key()
    config = Config.from_env(env)
    assert config.threads >= config.admission_slots + config.heavy_slots + config.long_slots + 2


def _a_public_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def test_probes_port_and_grace_period_agree_with_the_app_and_gunicorn(client):
    pod = _kind("Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    port = container["ports"][0]["containerPort"]
    assert f"--bind 0.0.0.0:{port}" in _variables()["GUNICORN_CMD_ARGS"]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        path = container[probe]["httpGet"]["path"]
        assert client.get(path).status_code in (200, 503), (probe, path)  # the route exists
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"  # never the database
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    graceful = int(re.search(r"^graceful_timeout = (\d+)$",
                             (ROOT / "gunicorn.conf.py").read_text(), re.M).group(1))
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pod["terminationGracePeriodSeconds"] > pause + graceful
    service = _kind("Service")
    assert service["spec"]["selector"] == _kind("Deployment")["spec"]["selector"]["matchLabels"]


def test_the_migration_job_runs_the_packaged_command():
    (container,) = _kind("Job")["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["pieces-service", "migrate"]
