"""The Dockerfile, Kubernetes manifests and Prometheus scrape config agree with the code."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from leaderboard_api.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
KUBE = ROOT / "deploy" / "kubernetes"
SCRAPE = ROOT / "deploy" / "prometheus" / "scrape.yaml"
SERVER = ROOT / "leaderboard_api" / "server.py"

SETTINGS_ENV = {f"LEADERBOARD_{name.upper()}" for name in Settings.model_fields}
#: Variables read by libraries the service uses, not by Settings.
LIBRARY_ENV = {"HF_TOKEN", "HF_HUB_OFFLINE"}


def env_name_known(name: str) -> bool:
    return name in SETTINGS_ENV or name in LIBRARY_ENV or name.startswith("OTEL_")


# --- Kubernetes -----------------------------------------------------------------------------


def kube_documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for file in sorted(KUBE.glob("*.yaml")):
        for doc in yaml.safe_load_all(file.read_text()):
            if doc is not None:
                assert isinstance(doc, dict), f"{file.name}: a document is not a mapping"
                docs.append(doc)
    return docs


@pytest.fixture(scope="module")
def kinds() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for doc in kube_documents():
        kind = doc["kind"]
        assert kind not in out, f"two {kind} documents; the tests expect one of each"
        out[kind] = doc
    return out


@pytest.fixture(scope="module")
def container(kinds: dict[str, dict[str, Any]]) -> dict[str, Any]:
    containers = kinds["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    found: dict[str, Any] = containers[0]
    return found


def container_port(container: dict[str, Any], port: int | str) -> int:
    """Resolve a probe or service port (a number or a named container port) to a number."""
    if isinstance(port, int):
        return port
    for entry in container["ports"]:
        if entry.get("name") == port:
            number: int = entry["containerPort"]
            return number
    msg = f"no container port named {port!r}"
    raise AssertionError(msg)


def test_every_kind_is_there_and_listed_in_the_kustomization(
    kinds: dict[str, dict[str, Any]],
) -> None:
    expected = {
        "ConfigMap",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Kustomization",
    }
    assert expected <= set(kinds)
    listed = set(kinds["Kustomization"]["resources"])
    on_disk = {p.name for p in KUBE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


def test_configmap_holds_valid_settings_only(
    kinds: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    data: dict[str, str] = kinds["ConfigMap"]["data"]
    unknown = sorted(name for name in data if not env_name_known(name))
    assert not unknown, f"not a Settings field, OTEL_* or library variable: {unknown}"
    assert all(isinstance(value, str) for value in data.values()), "ConfigMap values are strings"
    for name in list(SETTINGS_ENV):
        monkeypatch.delenv(name, raising=False)
    for name, value in data.items():
        monkeypatch.setenv(name, value)
    settings = Settings()  # the values parse as the service would parse them
    assert settings.host == "0.0.0.0"  # a pod listens on its own IP
    assert settings.log_format == "json"


def test_deployment_env_names_are_known(
    kinds: dict[str, dict[str, Any]], container: dict[str, Any]
) -> None:
    names = [entry["name"] for entry in container.get("env", [])]
    assert all(env_name_known(name) for name in names), names
    refs = [ref["configMapRef"]["name"] for ref in container["envFrom"] if "configMapRef" in ref]
    assert refs == [kinds["ConfigMap"]["metadata"]["name"]]


def test_ports_agree_everywhere(
    kinds: dict[str, dict[str, Any]], container: dict[str, Any]
) -> None:
    port = int(kinds["ConfigMap"]["data"]["LEADERBOARD_PORT"])
    assert container_port(container, "http") == port
    assert dockerfile_env()["LEADERBOARD_PORT"] == str(port)
    assert dockerfile_args("EXPOSE") == [str(port)]
    service_ports = kinds["Service"]["spec"]["ports"]
    assert [container_port(container, p["targetPort"]) for p in service_ports] == [port]
    annotations = kinds["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)


def test_probes_use_the_right_routes(container: dict[str, Any]) -> None:
    port = container_port(container, "http")
    for probe, path in (
        ("startupProbe", "/ready"),
        ("readinessProbe", "/ready"),
        ("livenessProbe", "/health"),
    ):
        get = container[probe]["httpGet"]
        assert get["path"] == path, probe
        assert container_port(container, get["port"]) == port, probe
    # A slow first load must not get the pod killed by liveness: the startup probe allows it.
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120


async def test_probe_routes_answer_as_the_probes_expect() -> None:
    """/health is 200 from the start, /ready is 503 + Retry-After then 200, /metrics is text."""
    from leaderboard_api.app import create_app

    app = create_app(Settings(data="sample", cache_dir=None))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://probe") as client,
    ):
        assert (await client.get("/health")).status_code == 200
        for _ in range(3000):
            ready = await client.get("/ready")
            if ready.status_code == 200:
                break
            assert ready.status_code == 503
            assert int(ready.headers["retry-after"]) > 0
            assert (await client.get("/health")).status_code == 200
            await asyncio.sleep(0.01)
        assert ready.status_code == 200
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        assert b"# TYPE" in metrics.content


def test_labels_and_selectors_agree(kinds: dict[str, dict[str, Any]]) -> None:
    deployment = kinds["Deployment"]
    match = deployment["spec"]["selector"]["matchLabels"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert match.items() <= pod_labels.items()
    assert kinds["Service"]["spec"]["selector"] == match
    assert kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == match
    for spread in deployment["spec"]["template"]["spec"].get("topologySpreadConstraints", []):
        assert spread["labelSelector"]["matchLabels"] == match
    target = kinds["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert target == {
        "apiVersion": deployment["apiVersion"],
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    names = {doc["metadata"]["name"] for kind, doc in kinds.items() if kind != "Kustomization"}
    assert names == {"leaderboard-api"}


def test_scaling_and_disruption_budgets_fit(kinds: dict[str, dict[str, Any]]) -> None:
    hpa = kinds["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    spec = hpa["spec"]
    assert [m["resource"]["name"] for m in spec["metrics"]] == ["cpu"]
    replicas = kinds["Deployment"]["spec"]["replicas"]
    assert replicas >= 2
    rollout = kinds["Deployment"]["spec"]
    assert rollout["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert rollout["minReadySeconds"] >= 3
    assert spec["minReplicas"] <= replicas <= spec["maxReplicas"]
    pdb = kinds["PodDisruptionBudget"]["spec"]
    assert pdb["maxUnavailable"] < spec["minReplicas"]


def parse_cpu(value: str | int) -> float:
    text = str(value)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def parse_memory(value: str) -> int:
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return int(value[: -len(suffix)]) * factor
    return int(value)


def test_resources_suit_one_worker(container: dict[str, Any]) -> None:
    requests, limits = container["resources"]["requests"], container["resources"]["limits"]
    assert parse_cpu(requests["cpu"]) <= parse_cpu(limits["cpu"]) <= 1.0  # one worker, one core
    assert parse_memory(requests["memory"]) <= parse_memory(limits["memory"])
    assert "--workers" not in " ".join(container.get("args", []) + container.get("command", []))


def test_termination_leaves_time_to_drain(
    kinds: dict[str, dict[str, Any]], container: dict[str, Any]
) -> None:
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = int(command[1])
    assert pre_stop >= 3  # endpoint removal must reach the proxies before SIGTERM
    found = re.search(r"timeout_graceful_shutdown=(\d+)", SERVER.read_text())
    drain = int(found.group(1)) if found else 30
    assert pod["terminationGracePeriodSeconds"] > pre_stop + drain
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == int(dockerfile_args("USER")[0].split(":")[0])


def test_prometheus_scrapes_the_annotated_pods(kinds: dict[str, dict[str, Any]]) -> None:
    config = yaml.safe_load(SCRAPE.read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert [sd["role"] for sd in job["kubernetes_sd_configs"]] == ["pod"]
    template = kinds["Deployment"]["spec"]["template"]["metadata"]
    keeps = {
        tuple(rule["source_labels"]): rule["regex"]
        for rule in job["relabel_configs"]
        if rule.get("action") == "keep"
    }
    name = template["labels"]["app.kubernetes.io/name"]
    assert keeps[("__meta_kubernetes_pod_label_app_kubernetes_io_name",)] == name
    assert keeps[("__meta_kubernetes_pod_annotation_prometheus_io_scrape",)] == "true"
    assert template["annotations"]["prometheus.io/scrape"] == "true"
    assert template["annotations"]["prometheus.io/path"] == job["metrics_path"]
    port_rule = next(r for r in job["relabel_configs"] if r.get("target_label") == "__address__")
    joined = "10.0.0.7:9999;" + template["annotations"]["prometheus.io/port"]
    address = re.sub(
        "^" + port_rule["regex"] + "$", port_rule["replacement"].replace("$", "\\"), joined
    )
    assert address == "10.0.0.7:8000"


# --- Dockerfile -----------------------------------------------------------------------------


def dockerfile_instructions() -> Iterator[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        word, _, rest = logical.partition(" ")
        yield word.upper(), rest.strip()
        logical = ""
    assert not logical, "the Dockerfile ends inside a continuation"


def dockerfile_raw(instruction: str) -> str:
    """The arguments of the last ``instruction`` in the Dockerfile, as written."""
    found = [rest for word, rest in dockerfile_instructions() if word == instruction]
    assert found, f"no {instruction} in the Dockerfile"
    return found[-1]


def dockerfile_args(instruction: str) -> list[str]:
    """The last ``instruction``'s arguments: exec form (JSON) or split like a shell."""
    raw = dockerfile_raw(instruction)
    if raw.startswith("["):
        argv: list[str] = json.loads(raw)
        return argv
    return shlex.split(raw)


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in dockerfile_instructions():
        if word == "ENV":
            for item in shlex.split(rest):
                name, sep, value = item.partition("=")
                assert sep, f"use ENV NAME=value, not the legacy form: {item!r}"
                env[name] = value
    return env


def test_dockerfile_base_user_port_and_command() -> None:
    words = [word for word, _ in dockerfile_instructions()]
    assert words.count("FROM") == 1
    base = dockerfile_env_default("PYTHON_IMAGE")
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", base), base
    user = dockerfile_args("USER")[0].split(":")[0]
    assert user not in ("root", "0")
    assert words.index("USER") > words.index("COPY")
    assert dockerfile_args("ENTRYPOINT") == ["leaderboard-api"]
    assert dockerfile_args("CMD")[0] == "serve"
    commands = " ".join(rest for word, rest in dockerfile_instructions() if word != "ENV")
    assert not re.search(r"--workers[ =](?!1\b)", commands)
    # The CLI owns the server's config (one worker, graceful exit), not a uvicorn command line.
    assert "uvicorn" not in commands


def dockerfile_env_default(arg: str) -> str:
    for word, rest in dockerfile_instructions():
        if word == "ARG" and rest.startswith(f"{arg}="):
            return rest.split("=", 1)[1].strip('"')
    msg = f"no ARG {arg} with a default"
    raise AssertionError(msg)


def test_dockerfile_env_configures_through_settings_only() -> None:
    env = dockerfile_env()
    leaderboard = {name for name in env if name.startswith("LEADERBOARD_")}
    assert leaderboard <= SETTINGS_ENV, sorted(leaderboard - SETTINGS_ENV)
    assert env["LEADERBOARD_HOST"] == "0.0.0.0"
    assert env["LEADERBOARD_DATA"] == "${DATASET}"
    assert env["HF_HUB_OFFLINE"] == "${DATASET:+1}"  # baked images never wait on the hub
    assert "DATASET" in {
        rest.split("=")[0] for word, rest in dockerfile_instructions() if word == "ARG"
    }


def test_dockerfile_bakes_into_the_folders_the_server_reads() -> None:
    steps = list(dockerfile_instructions())
    warm = next(i for i, (word, rest) in enumerate(steps) if word == "RUN" and " warm " in rest)
    assert '--cache-dir "$LEADERBOARD_CACHE_DIR"' in steps[warm][1]
    env_at_warm: dict[str, str] = {}
    for word, rest in steps[:warm]:
        if word == "ENV":
            for item in shlex.split(rest):
                name, _, value = item.partition("=")
                env_at_warm[name] = value
    # The hub download lands where the server will look, and is made online.
    assert env_at_warm["LEADERBOARD_HF_CACHE_DIR"] == dockerfile_env()["LEADERBOARD_HF_CACHE_DIR"]
    assert "HF_HUB_OFFLINE" not in env_at_warm
    user_before = [rest for word, rest in steps[:warm] if word == "USER"]
    assert user_before, "bake as the runtime user so the cache files are its own"


def test_dockerfile_healthcheck_probes_health_with_python() -> None:
    options, sep, command = dockerfile_raw("HEALTHCHECK").partition("CMD ")
    assert sep, "HEALTHCHECK needs a CMD"
    assert "--interval=" in options
    argv = json.loads(command)  # exec form: no shell needed, no curl in a slim image
    assert argv[:2] == ["python", "-c"]
    assert "/health" in argv[2]
    compile(argv[2], "<healthcheck>", "exec")


def test_dockerfile_installs_dependencies_before_the_code() -> None:
    steps = list(dockerfile_instructions())
    copies = [i for i, (word, rest) in enumerate(steps) if word == "COPY"]
    install = next(i for i, (word, rest) in enumerate(steps) if "pip install -r" in rest)
    code = next(
        i for i, (word, rest) in enumerate(steps) if word == "COPY" and "leaderboard_api" in rest
    )
    assert steps[copies[0]][1].split() == ["pyproject.toml", "./"]
    assert copies[0] < install < code
    # The server reads static/ beside the package directory: both land in /app.
    workdir = dockerfile_args("WORKDIR")[0]
    assert workdir == "/app"
    copied = {shlex.split(rest)[0]: shlex.split(rest)[1] for word, rest in steps if word == "COPY"}
    assert copied["leaderboard_api/"] == "./leaderboard_api/"
    assert copied["static/"] == "./static/"
    assert any("pip install --no-deps -e ." in rest for word, rest in steps if word == "RUN")


def test_dockerignore_sends_only_what_the_image_needs() -> None:
    lines = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    included = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = {
        shlex.split(rest)[0].rstrip("/")
        for word, rest in dockerfile_instructions()
        if word == "COPY"
    }
    assert copied <= included
    assert (ROOT / "README.md").is_file()
    assert (ROOT / "static").is_dir()
