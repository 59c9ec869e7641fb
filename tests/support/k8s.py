"""deploy/k8s as data: the kustomization's resources by kind, and the pod the podman tests play from them
(tests/deploy/test_manifests.py, test_kube_play.py, test_kube_play_bad_model.py)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from benchmarks.harness.paths import ROOT

K8S = ROOT / "deploy" / "k8s"


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kustomized() -> dict[str, dict]:
    """The resources the kustomization lists, by kind."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    found = {}
    for name in kustomization["resources"]:
        for doc in documents(K8S / name):
            assert doc["kind"] not in found, f"two {doc['kind']}s"
            found[doc["kind"]] = doc
    return found


def pod_manifest(image_name: str, port: int, suffix: str, grpc_port: int) -> tuple[list[dict], dict]:
    resources = kustomized()
    configmap, deployment, secret = (
        json.loads(json.dumps(resources[k])) for k in ("ConfigMap", "Deployment", "Secret")
    )
    configmap["metadata"]["name"] += f"-{suffix}"
    configmap["data"]["TOYSEQ_BIND"] = f"127.0.0.1:{port}"
    configmap["data"]["TOYSEQ_GRPC_BIND"] = f"127.0.0.1:{grpc_port}"
    deployment["metadata"]["name"] += f"-{suffix}"
    deployment["spec"]["replicas"] = 1
    pod = deployment["spec"]["template"]["spec"]
    [box] = pod["containers"]
    box["image"] = image_name
    box.pop("ports")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        kind = "grpc" if "grpc" in box[probe] else "httpGet"
        box[probe][kind]["port"] = grpc_port if kind == "grpc" else port
    box["envFrom"][0]["configMapRef"]["name"] = configmap["metadata"]["name"]
    [key] = [e for e in box["env"] if e["name"] == "TOYSEQ_API_KEY"]
    key["valueFrom"]["secretKeyRef"]["name"] = f"toyseq-key-{suffix}"
    for volume in pod["volumes"]:
        old = volume["name"]
        volume["name"] = f"{old}-{suffix}"
        for mount in box["volumeMounts"]:
            if mount["name"] == old:
                mount["name"] = volume["name"]
    return [configmap, deployment], secret
