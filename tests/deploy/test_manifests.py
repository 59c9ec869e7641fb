"""The Kubernetes manifests, checked offline: every resource in deploy/k8s/ against the Kubernetes OpenAPI schemas
(kubernetes-validate, strict: unknown fields fail) for the oldest and newest Kubernetes versions we claim; the
KServe InferenceService against KServe's own CRD schema (the v1beta1 openAPIV3Schema of
config/crd/full/serving.kserve.io_inferenceservices.yaml at kserve commit aaac4e29, vendored in
tests/support/schemas/, with unknown fields refused as strict validation would); and what the manifests must
say for toyseq to run well: probes on the right paths, settings the service accepts, a grace period longer
than gunicorn's, a non-root read-only container with a writable /tmp, and selectors that match.
"""

from __future__ import annotations

import gzip
import json

import pytest
import yaml

from benchmarks.harness.paths import ROOT
from service.server.config import PREFIX, Config
from tests.support.k8s import K8S, documents, kustomized

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install -e '.[test]'")
jsonschema = pytest.importorskip("jsonschema")

KSERVE = ROOT / "deploy" / "kserve"
# The oldest Kubernetes release still maintained upstream when this was written, and the newest the pinned
# kubernetes-validate knows.
K8S_VERSIONS = ("1.33.0", "1.37.0")
KSERVE_SCHEMA = ROOT / "tests" / "support" / "schemas" / "kserve-inferenceservice-v1beta1.json.gz"


def test_kustomization_lists_every_manifest_in_the_folder():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1" and kustomization["kind"] == "Kustomization"
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap", "Secret"} == set(
        kustomized()
    )
    assert [image["name"] for image in kustomization["images"]] == [
        kustomized()["Deployment"]["spec"]["template"]["spec"]["containers"][0]["image"]
    ]


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml"))
def test_every_resource_validates_against_the_kubernetes_schema(path, version):
    for doc in documents(K8S / path):
        kubernetes_validate.validate(doc, version, strict=True)  # raises ValidationError saying where


def test_a_broken_manifest_is_caught():
    """The validator really checks: a misspelt field and a wrong type both fail."""
    deployment = kustomized()["Deployment"]
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)


def container(deployment: dict) -> dict:
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    return only


def env_settings(configmap: dict, entries: list[dict]) -> dict[str, str]:
    values = dict(configmap.get("data", {})) if configmap else {}
    values.update({e["name"]: e["value"] for e in entries if "value" in e})
    return values


def test_deployment_probes_settings_security_and_graceful_stop():
    resources = kustomized()
    deployment, configmap, secret = resources["Deployment"], resources["ConfigMap"], resources["Secret"]
    pod = deployment["spec"]["template"]["spec"]
    box = container(deployment)
    # readiness over gRPC health checking, for the inference service; startup and liveness over HTTP
    assert box["readinessProbe"]["grpc"] == {"port": 8001, "service": "inference.GRPCInferenceService"}
    assert box["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert box["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    # every setting is one the service knows, with a value it accepts
    assert [ref["configMapRef"]["name"] for ref in box["envFrom"]] == [configmap["metadata"]["name"]]
    settings = env_settings(configmap, box["env"])
    unknown = [
        k for k in settings if k.startswith(PREFIX) and k[len(PREFIX) :].lower() not in Config.__dataclass_fields__
    ]
    assert not unknown, unknown
    config = Config.load(environ={k: v for k, v in settings.items() if k.startswith(PREFIX)})
    assert config.bind.endswith(":8000") and box["ports"][0]["containerPort"] == 8000
    assert (
        config.grpc_bind.endswith(":8001")
        and {"name": "grpc", "containerPort": 8001, "protocol": "TCP"} in box["ports"]
    )
    assert any(p["targetPort"] == "grpc" and p["port"] == 8001 for p in resources["Service"]["spec"]["ports"])
    # the API key comes from the Secret, under the key the Secret has
    [key] = [e for e in box["env"] if e["name"] == "TOYSEQ_API_KEY"]
    ref = key["valueFrom"]["secretKeyRef"]
    assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
    # graceful stop: preStop, then SIGTERM and TOYSEQ_GRACEFUL_TIMEOUT for requests in flight, before SIGKILL
    pre_stop = box["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > int(pre_stop[1]) + config.graceful_timeout
    # non-root, read-only root filesystem, a writable /tmp where gunicorn and prometheus write
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] != 0
    assert box["securityContext"]["readOnlyRootFilesystem"] and not box["securityContext"]["allowPrivilegeEscalation"]
    mounts = {m["mountPath"]: m["name"] for m in box["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]] and settings["HOME"] == settings["TMPDIR"] == "/tmp"
    # requests and limits are set, limits above requests
    requests, limits = box["resources"]["requests"], box["resources"]["limits"]
    assert set(requests) == set(limits) == {"cpu", "memory"}
    assert mebibytes(limits["memory"]) > mebibytes(requests["memory"])


def mebibytes(quantity: str) -> float:
    units = {"Mi": 1, "Gi": 1024, "M": 1e6 / 2**20, "G": 1e9 / 2**20}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return float(quantity[: -len(suffix)]) * factor
    return float(quantity) / 2**20


def test_service_pdb_and_hpa_point_at_the_deployment():
    resources = kustomized()
    deployment = resources["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = resources["Service"]
    assert service["spec"]["selector"].items() <= labels.items()
    port_names = {p["name"] for p in container(deployment)["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    assert resources["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = resources["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    [metric] = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu" and 0 < metric["resource"]["target"]["averageUtilization"] <= 100
    # the PDB leaves a pod to evict at the HPA's minimum
    assert resources["PodDisruptionBudget"]["spec"]["minAvailable"] < hpa["minReplicas"]


# --- KServe ---------------------------------------------------------------------------------------------


def unknown_fields(value, schema: dict, where: str = "") -> list[str]:
    """Fields the schema does not declare: what a strict apply refuses (the API server would prune them)."""
    found = []
    if isinstance(value, dict) and schema.get("type") == "object":
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return found
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if props is not None and key in props:
                found += unknown_fields(item, props[key], f"{where}.{key}")
            elif isinstance(extra, dict):
                found += unknown_fields(item, extra, f"{where}.{key}")
            elif props is not None:
                found.append(f"{where}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            found += unknown_fields(item, schema["items"], f"{where}[{i}]")
    return found


@pytest.fixture(scope="module")
def isvc_schema() -> dict:
    return json.loads(gzip.decompress(KSERVE_SCHEMA.read_bytes()))


def test_inference_service_validates_against_kserves_crd_schema(isvc_schema):
    [isvc] = documents(KSERVE / "inferenceservice.yaml")
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1" and isvc["kind"] == "InferenceService"
    jsonschema.Draft7Validator(isvc_schema).validate(isvc)
    assert unknown_fields(isvc, isvc_schema) == []
    # the predictor is the same image as the Deployment's, probed on the same paths, with valid settings
    [box] = isvc["spec"]["predictor"]["containers"]
    assert box["name"] == "kserve-container" and box["image"].split(":")[0] == "toyseq"
    assert box["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert box["livenessProbe"]["httpGet"]["path"] == "/healthz"
    settings = env_settings({}, box["env"])
    config = Config.load(environ={k: v for k, v in settings.items() if k.startswith(PREFIX)})
    assert config.bind.endswith(f":{box['ports'][0]['containerPort']}")
    assert (
        config.grpc_bind.endswith(":8001") and {"name": "h2c", "containerPort": 8001, "protocol": "TCP"} in box["ports"]
    )
    assert isvc["spec"]["predictor"]["terminationGracePeriodSeconds"] > config.graceful_timeout


def test_the_crd_check_catches_mistakes(isvc_schema):
    [isvc] = documents(KSERVE / "inferenceservice.yaml")
    broken = json.loads(json.dumps(isvc))
    broken["spec"]["predictor"]["containerz"] = []
    assert unknown_fields(broken, isvc_schema) == [".spec.predictor.containerz"]
    broken = json.loads(json.dumps(isvc))
    broken["spec"]["predictor"]["minReplicas"] = "two"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(isvc_schema).validate(broken)
