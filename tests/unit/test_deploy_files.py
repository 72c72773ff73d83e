"""The deployment files agree with the code: the Dockerfile installs what the README and the Makefile
install, images and manifests use the server's ports and drain time, and the dashboard and alerts query
only metrics the server exports."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from prometheus_client import CollectorRegistry

from tuneserve.server.app import READY_SERVICES, TRAINING
from tuneserve.server.metrics import Metrics
from tuneserve.server.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
MONITORING = ROOT / "deploy" / "monitoring"
DEFAULTS = {name: field.default for name, field in Settings.model_fields.items()}
TARGETS = {"serve-cpu": {"serve"}, "serve-gpu": {"gpu"}, "train": {"serve", "train"}}


def dockerfile_stages() -> dict[str, list[str]]:
    """Instructions (continuation lines joined) by stage name."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if m := re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.IGNORECASE):
            current = stages.setdefault(m.group(2) or m.group(1), [])
            current.append(line)
        else:
            current.append(line)
    return stages


def stage_chain(stages: dict[str, list[str]], name: str) -> list[str]:
    """A stage's instructions with those of the stages it is built FROM, parents first."""
    lines = stages[name]
    parent = lines[0].split()[1]
    return (stage_chain(stages, parent) if parent in stages else []) + lines


def uv_syncs(lines: list[str]) -> list[list[str]]:
    """The argument lists of every `uv sync` in RUN instructions (or shell lines)."""
    found = []
    for line in lines:
        for command in re.split(r"&&|;|\n", line):
            words = shlex.split(command.strip().removeprefix("RUN"), comments=True)
            while words and words[0].startswith("--"):  # RUN --mount=...
                words.pop(0)
            if words[:2] in (["uv", "sync"], ["$(UV)", "sync"]):
                found.append(words)
    return found


def extras(words: list[str]) -> frozenset[str]:
    return frozenset(words[i + 1] for i, w in enumerate(words) if w == "--extra")


def copied_from(lines: list[str]) -> set[str]:
    return {m.group(1) for line in lines if (m := re.match(r"COPY\s+--from=(\S+)", line))}


def test_each_image_installs_its_extras_locked_non_editable_and_without_dev_tools() -> None:
    stages = dockerfile_stages()
    for target, wanted in TARGETS.items():
        builds = [s for s in copied_from(stages[target]) if s != "uv"]
        assert len(builds) == 1, f"{target} should copy its venv from one build stage, not {builds}"
        chain = stage_chain(stages, builds[0])
        syncs = uv_syncs(chain)
        assert syncs, f"{builds[0]} runs no uv sync"
        for words in syncs:
            assert extras(words) == wanted, f"{target}: {shlex.join(words)}"
            assert "--locked" in words and "--no-dev" in words, shlex.join(words)
        env = " ".join(line for line in chain if line.startswith("ENV"))
        assert "UV_NO_EDITABLE=1" in env, f"{builds[0]} must install non-editable, as `make install` does"


def test_image_extras_are_the_documented_and_tested_installs() -> None:
    makefile = (ROOT / "Makefile").read_text()
    make_extras = extras(shlex.split(re.search(r"^EXTRAS \?= (.+)$", makefile, re.M).group(1)))
    install = re.search(r"^install:.*?\n((?:\t.*\n)+)", makefile, re.M).group(1)
    assert [w[2:] for w in uv_syncs(install.splitlines()) if "$(EXTRAS)" in w] == [["--locked", "$(EXTRAS)"]]
    # CI tests the train image's install; the README documents every image's.
    assert TARGETS["train"] == make_extras
    readme = [
        extras(w) for w in uv_syncs(re.findall(r"^uv sync .*$", (ROOT / "README.md").read_text(), re.M))
    ]
    for target, wanted in TARGETS.items():
        assert wanted in readme, f"README documents no `uv sync` with the {target} image's extras"
    pyproject = (ROOT / "pyproject.toml").read_text()
    serve = re.search(r"^serve = \[(.*?)\]", pyproject, re.M | re.S).group(1)
    assert "torch" not in serve, "the serve-cpu image must not get torch"


def test_images_expose_the_server_defaults_and_check_health() -> None:
    stages = dockerfile_stages()
    for target in TARGETS:
        chain = stage_chain(stages, target)
        expose = {int(p) for line in chain if line.startswith("EXPOSE") for p in line.split()[1:]}
        assert expose == {DEFAULTS["port"], DEFAULTS["http_port"], DEFAULTS["metrics_port"]}
        env = dict(
            word.split("=", 1) for line in chain if line.startswith("ENV") for word in shlex.split(line)[1:]
        )
        assert int(env["TUNESERVE_PORT"]) == DEFAULTS["port"]
        assert int(env["TUNESERVE_METRICS_PORT"]) == DEFAULTS["metrics_port"]
        assert env["TUNESERVE_MODEL_ROOT"] == "/models"
        assert any(line.startswith("USER 10001") for line in chain), f"{target} must not run as root"
        healthcheck = [line for line in chain if line.startswith("HEALTHCHECK")]
        assert healthcheck and "grpc_health" in healthcheck[-1]
    images = re.findall(r"^ARG \w+_IMAGE=(\S+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert len(images) == 3
    for image in images:
        assert re.search(r":\d[\w.-]*$|@sha256:[0-9a-f]{64}$", image), f"pin {image} by exact tag or digest"


def kube(path: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((KUBE / path).read_text()) if d]


def test_deployment_probes_ports_and_drain_match_the_server() -> None:
    (deployment,) = kube("base/deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {
        "grpc": DEFAULTS["port"],
        "metrics": DEFAULTS["metrics_port"],
        "http": DEFAULTS["http_port"],
    }
    assert int(env["TUNESERVE_PORT"]) == DEFAULTS["port"]
    assert int(env["TUNESERVE_METRICS_PORT"]) == DEFAULTS["metrics_port"]
    assert int(env["TUNESERVE_HTTP_PORT"]) == DEFAULTS["http_port"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == DEFAULTS["port"]
        assert container[probe]["grpc"]["service"] in READY_SERVICES
    # SIGKILL must not cut the drain short: preStop sleep + drain grace fit in the termination grace.
    grace = float(env["TUNESERVE_GRACE_PERIOD_S"])
    assert grace == DEFAULTS["grace_period_s"]
    sleep = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > sleep + grace
    # Liveness must not fail a draining pod (health is NOT_SERVING then) before it is stopped anyway.
    live = container["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] >= pod["terminationGracePeriodSeconds"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["models"] == env["TUNESERVE_MODEL_ROOT"] == "/models"
    volumes = {v["name"]: v for v in pod["volumes"]}
    (pvc,) = kube("base/pvc.yaml")
    assert volumes["models"]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    (monitor,) = kube("base/servicemonitor.yaml")
    assert [(e["port"], e["path"]) for e in monitor["spec"]["endpoints"]] == [("metrics", "/metrics")]
    # Serving replicas follow versions the trainer promotes.
    assert env["TUNESERVE_TRAINING__ENABLED"] == "false"
    assert float(env["TUNESERVE_STORE_POLL_INTERVAL_S"]) > 0


def test_one_trainer_owns_the_job_store_on_the_serving_model_store() -> None:
    deployment, service = kube("base/trainer.yaml")
    (serving,) = kube("base/deployment.yaml")
    # Never two trainers on one job store, not even during a rollout.
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["TUNESERVE_TRAINING__ENABLED"] == "true"
    assert env["TUNESERVE_MODEL_ROOT"] == "/models"
    assert container["readinessProbe"]["grpc"]["service"] == TRAINING
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["grpc"]["service"] in READY_SERVICES
    volumes = {v["name"]: v for v in pod["volumes"]}
    serving_volumes = {v["name"]: v for v in serving["spec"]["template"]["spec"]["volumes"]}
    assert volumes["models"] == serving_volumes["models"]
    # Its own Service: the serving Services and the PodDisruptionBudget select serving pods only.
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"] == labels
    for doc in [*kube("base/services.yaml"), *kube("base/pdb.yaml")]:
        selector = doc["spec"]["selector"]
        assert not (selector.get("matchLabels", selector).items() <= labels.items()), doc["metadata"]
    (monitor,) = kube("base/servicemonitor.yaml")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()


def test_prometheus_rule_carries_the_tested_alerts() -> None:
    (rule,) = kube("base/prometheusrule.yaml")
    alerts = yaml.safe_load((MONITORING / "alerts.yaml").read_text())
    assert rule["spec"]["groups"] == alerts["groups"], (
        "copy the groups of deploy/monitoring/alerts.yaml into deploy/kubernetes/base/prometheusrule.yaml"
    )


def exported_metric_names() -> set[str]:
    """Every series name the server can expose, as PromQL sees it (suffixes included)."""
    suffixes = {"counter": ["_total", "_created"], "histogram": ["_bucket", "_count", "_sum", "_created"]}
    names = set()
    for family in Metrics(CollectorRegistry()).registry.collect():
        names.add(family.name)
        names.update(family.name + s for s in suffixes.get(family.type, []))
    return names


def queries() -> dict[str, str]:
    """PromQL of the dashboard's panels and variables and of the alerting rules, by where it comes from."""
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    found = {
        f"panel {p['title']!r} {t['refId']}": t["expr"] for p in dashboard["panels"] for t in p["targets"]
    }
    found |= {
        f"variable {v['name']}": v["definition"] for v in dashboard["templating"]["list"] if "definition" in v
    }
    rules = yaml.safe_load((MONITORING / "alerts.yaml").read_text())
    found |= {f"rule {r['alert']}": r["expr"] for g in rules["groups"] for r in g["rules"]}
    return found


def test_metric_names_exist() -> None:
    names = exported_metric_names()
    assert {"tuneserve_requests_total", "tuneserve_request_duration_seconds_bucket"} <= names
    assert "tuneserve_requests" in names and "tuneserve_training_jobs_finished_total" in names


@pytest.mark.parametrize(("where", "expr"), sorted(queries().items()))
def test_dashboard_and_alerts_query_only_exported_metrics(where: str, expr: str) -> None:
    used = set(re.findall(r"\btuneserve_[a-z0-9_]+", expr))
    assert used, f"{where} queries no tuneserve metric: {expr}"
    assert used <= exported_metric_names(), f"{where}: not exported: {sorted(used - exported_metric_names())}"


def _overlay_env(path: str, deployment: str) -> dict[str, str]:
    """The env of the patched container in an overlay's strategic-merge patch of ``deployment``."""
    (patch,) = [d for d in kube(path) if d["metadata"]["name"] == deployment]
    (container,) = patch["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container.get("env", [])}


def test_gpu_overlay_sets_the_fp16_and_cuda_it_describes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings ignore unknown TUNESERVE_* names, so a misspelt variable would silently change nothing:
    read each overlay's env through Settings and check the values it claims."""
    kustomization = yaml.safe_load((KUBE / "overlays/gpu/kustomization.yaml").read_text())
    patches = {p["path"] for p in kustomization["patches"] if "path" in p}
    assert {"deployment-gpu.yaml", "trainer-gpu.yaml"} <= patches
    trainer = _overlay_env("overlays/gpu/trainer-gpu.yaml", "tuneserve-trainer")
    serving = _overlay_env("overlays/gpu/deployment-gpu.yaml", "tuneserve")
    for env, check in (
        (
            trainer,
            lambda s: (
                s.training.quantization == "fp16"
                and s.training.device == "cuda"
                and s.training.kubernetes.gpus == 1
                and s.training.kubernetes.node_selector == {"nvidia.com/gpu.present": "true"}
            ),
        ),
        (serving, lambda s: s.device == "cuda"),
    ):
        for name in [k for k in os.environ if k.startswith("TUNESERVE_")]:
            monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        settings = Settings()
        assert check(settings), env
        for name in env:
            _assert_setting(settings, name)


def _validator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("validate", KUBE / "validate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _render(overlay: str | Path) -> list[dict]:
    """An overlay (a name under overlays/, or a folder) as `make deploy-check` renders it (the pinned
    kustomize), else as kubectl does."""
    pinned = sorted((ROOT / ".bin").glob("kustomize-*"))
    if pinned:
        command = [str(pinned[-1]), "build"]
    elif shutil.which("kubectl"):
        command = ["kubectl", "kustomize"]
    else:
        pytest.skip("no kustomize (make deploy-check builds it) and no kubectl")
    out = subprocess.run(
        [*command, str(KUBE / "overlays" / overlay)], capture_output=True, text=True, check=True
    )
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def test_validator_knows_the_dockerfile_targets() -> None:
    assert set(_validator().TARGETS) == set(TARGETS) <= set(dockerfile_stages())


OVERLAYS = ["cpu", "gpu", "s3-cpu", "s3-gpu"]


def test_every_overlay_is_tested() -> None:
    assert sorted(p.name for p in (KUBE / "overlays").iterdir() if p.is_dir()) == sorted(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_runs_the_trainer_from_the_train_image(overlay: str) -> None:
    docs = _render(overlay)
    images = {
        d["metadata"]["name"]: [c["image"] for c in d["spec"]["template"]["spec"]["containers"]]
        for d in docs
        if d["kind"] == "Deployment"
    }
    hardware = overlay.removeprefix("s3-")
    assert images == {"tuneserve": [f"tuneserve:serve-{hardware}"], "tuneserve-trainer": ["tuneserve:train"]}
    assert _validator().check_workloads(docs) == []
    assert _validator().check_storage(docs) == []


def test_validator_refuses_a_trainer_without_torch_and_serving_with_training_on() -> None:
    validate = _validator()
    docs = _render("cpu")
    by_name = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    (trainer,) = by_name["tuneserve-trainer"]["spec"]["template"]["spec"]["containers"]
    (serving,) = by_name["tuneserve"]["spec"]["template"]["spec"]["containers"]
    trainer["image"] = "tuneserve:serve-cpu"  # the rendering bug of kustomize's image transformer
    serving["env"] = [e for e in serving["env"] if e["name"] != "TUNESERVE_TRAINING__ENABLED"]
    serving["command"] = ["python"]
    errors = "\n".join(validate.check_workloads(docs))
    assert "tuneserve-trainer container tuneserve: the trainer runs tuneserve:serve-cpu" in errors
    assert (
        "Deployment tuneserve container tuneserve: a serving container needs TUNESERVE_TRAINING__ENABLED"
        in errors
    )
    assert "not `tuneserve serve`" in errors
    by_name["tuneserve-trainer"]["spec"]["replicas"] = 2
    assert any("one replica" in e for e in validate.check_workloads(docs))


def _deployments(docs: list[dict]) -> dict[str, tuple[dict, dict]]:
    """Each Deployment's pod spec and its one container, by name."""
    found = {}
    for d in docs:
        if d["kind"] == "Deployment":
            pod = d["spec"]["template"]["spec"]
            (container,) = pod["containers"]
            found[d["metadata"]["name"]] = (pod, container)
    return found


@pytest.mark.parametrize("overlay", ["s3-cpu", "s3-gpu"])
def test_object_store_overlays_need_no_shared_volume(overlay: str) -> None:
    """Serving pods: a bucket, credentials from a Secret, an emptyDir cache and no claim; the trainer: the
    same bucket and its job store on a ReadWriteOnce claim; no ReadWriteMany claim anywhere."""
    validate = _validator()
    docs = _render(overlay)
    claims = {d["metadata"]["name"]: d for d in docs if d["kind"] == "PersistentVolumeClaim"}
    assert all(c["spec"]["accessModes"] == ["ReadWriteOnce"] for c in claims.values()), claims
    roots = set()
    for name, (pod, container) in _deployments(docs).items():
        env, _ = validate.effective_env(container, docs)
        roots.add(env["TUNESERVE_MODEL_ROOT"])
        assert pod["serviceAccountName"] == (
            "tuneserve-trainer" if name == "tuneserve-trainer" else "tuneserve"
        )
        assert {"secretRef": {"name": "tuneserve-s3", "optional": True}} in container["envFrom"]
        assert not validate.AWS_SECRETS & set(env), "AWS keys come from the Secret only"
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        cache = volumes[mounts[env["TUNESERVE_CACHE_DIR"]]]
        assert validate.quantity(cache["emptyDir"]["sizeLimit"]) >= 1.25 * int(
            env["TUNESERVE_CACHE_MAX_BYTES"]
        )
        claimed = [
            v["persistentVolumeClaim"]["claimName"] for v in volumes.values() if "persistentVolumeClaim" in v
        ]
        if name == "tuneserve":
            assert claimed == []
        else:
            assert claimed == ["tuneserve-jobs"] and "tuneserve-jobs" in claims
            assert volumes[mounts[env["TUNESERVE_TRAINING__JOBS_DIR"]]]["persistentVolumeClaim"]
            assert env["TUNESERVE_TRAINING__DATA_ROOT"].startswith("s3://")
    ((root,),) = [roots]
    assert root.startswith("s3://")


def _set_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str | None]) -> None:
    for key in [k for k in os.environ if k.startswith(("TUNESERVE_", "AWS_"))]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if value is not None:
            monkeypatch.setenv(key, value)


def test_object_store_settings_are_the_servers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Read the trainer's and a replica's environment (ConfigMap and literals) through Settings: a
    misspelt TUNESERVE_* name would be ignored, leaving the model store on a read-only local path. The
    bucket is set as the README says, in an overlay of one's own; without it, start-up stops."""
    validate = _validator()
    docs = _render("s3-cpu")
    _, container = _deployments(docs)["tuneserve"]
    _set_env(monkeypatch, validate.effective_env(container, docs)[0])
    with pytest.raises(ValueError, match="CHANGE-ME"):
        Settings()
    overlay = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(KUBE / "overlays" / "s3-cpu", tmp_path)],
        "configMapGenerator": [
            {
                "name": "tuneserve-store",
                "behavior": "merge",
                "literals": [
                    "TUNESERVE_MODEL_ROOT=s3://my-models/prod",
                    "TUNESERVE_TRAINING__DATA_ROOT=s3://my-data/train",
                ],
            }
        ],
    }
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(overlay))
    docs = _render(tmp_path)
    for name, (_, container) in _deployments(docs).items():
        env, _ = validate.effective_env(container, docs)
        _set_env(monkeypatch, env)
        settings = Settings()
        assert settings.model_root == "s3://my-models/prod"
        assert settings.store.root == env["TUNESERVE_MODEL_ROOT"]
        assert str(settings.store.cache_dir) == env["TUNESERVE_CACHE_DIR"]
        assert settings.cache_max_bytes == int(env["TUNESERVE_CACHE_MAX_BYTES"])
        if name == "tuneserve-trainer":
            assert settings.training.enabled
            assert str(settings.jobs_dir) == env["TUNESERVE_TRAINING__JOBS_DIR"]
            assert settings.training.data_root == "s3://my-data/train"
        for key in [k for k in env if k.startswith("TUNESERVE_")]:
            _assert_setting(settings, key)


def _assert_setting(settings: Settings, name: str) -> None:
    """``TUNESERVE_A__B__C`` names a field of the settings (nested models), not a misspelt nothing."""
    node: object = settings
    for part in name.removeprefix("TUNESERVE_").lower().split("__"):
        assert part in type(node).model_fields, f"{name} is no setting"  # type: ignore[attr-defined]
        node = getattr(node, part)


@pytest.mark.parametrize("overlay", ["cpu", "gpu", "s3-cpu", "s3-gpu"])
def test_training_runs_as_kubernetes_jobs_that_hold_the_gpu(overlay: str) -> None:
    """The trainer runs each job as a Kubernetes Job and holds no GPU itself; the Job it would render
    from its settings asks for the GPU, mounts the model store or reads the bucket's keys from the Secret,
    and runs the trainer's own image."""
    validate = _validator()
    docs = _render(overlay)
    errors, rendered = validate.check_training_jobs(docs)
    assert errors == []
    pod, container = _deployments(docs)["tuneserve-trainer"]
    env, _ = validate.effective_env(container, docs)
    assert env["TUNESERVE_TRAINING__EXECUTOR"] == "kubernetes"
    assert "nvidia.com/gpu" not in container["resources"].get("limits", {})
    assert pod["automountServiceAccountToken"] is True
    job = rendered[0]
    job_pod = job["spec"]["template"]["spec"]
    (job_container,) = job_pod["containers"]
    assert job_container["image"] == container["image"] == "tuneserve:train"
    assert job_pod["serviceAccountName"] == "tuneserve" and job_pod["automountServiceAccountToken"] is False
    limits = job_container["resources"]["limits"]
    assert ("nvidia.com/gpu" in limits) == overlay.endswith("gpu")
    if overlay.endswith("gpu"):
        assert job_pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    claims = [
        v["persistentVolumeClaim"]["claimName"] for v in job_pod["volumes"] if "persistentVolumeClaim" in v
    ]
    job_env = {e["name"]: e for e in job_container["env"]}
    if overlay.startswith("s3"):
        assert claims == []
        ref = job_env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "tuneserve-s3", "key": "AWS_SECRET_ACCESS_KEY", "optional": True}
    else:
        assert claims == ["tuneserve-models"]
    assert [d["kind"] for d in rendered] == ["Job", "Job", "Service"]


def test_validator_refuses_rights_the_executor_lacks_or_does_not_need() -> None:
    validate = _validator()

    def errors_after(change: Callable[[list[dict]], None]) -> str:
        docs = _render("cpu")
        change(docs)
        return "\n".join(validate.check_training_jobs(docs)[0])

    def role(docs: list[dict]) -> dict:
        return next(d for d in docs if d["kind"] == "Role")

    def no_watch(docs: list[dict]) -> None:
        role(docs)["rules"][0]["verbs"].remove("watch")

    def may_patch(docs: list[dict]) -> None:
        role(docs)["rules"][0]["verbs"].append("patch")

    def serving_token(docs: list[dict]) -> None:
        pod, _ = _deployments(docs)["tuneserve"]
        pod["automountServiceAccountToken"] = True

    def trainer_gpu(docs: list[dict]) -> None:
        _, container = _deployments(docs)["tuneserve-trainer"]
        container["resources"]["limits"]["nvidia.com/gpu"] = 1

    assert "lacks [('batch', 'jobs', 'watch')]" in errors_after(no_watch)
    assert "more than the executor needs: [('batch', 'jobs', 'patch')]" in errors_after(may_patch)
    assert "Deployment tuneserve: mounts an API token it has no use for" in errors_after(serving_token)
    assert "yet holds a GPU itself" in errors_after(trainer_gpu)


def _broken(change: Callable[[dict[str, tuple[dict, dict]], list[dict]], None]) -> str:
    docs = _render("s3-cpu")
    change(_deployments(docs), docs)
    return "\n".join(_validator().check_storage(docs))


def test_validator_refuses_a_shared_volume_with_the_object_store() -> None:
    def serving_claim(deployments: dict, docs: list[dict]) -> None:
        pod, container = deployments["tuneserve"]
        pod["volumes"].append({"name": "jobs", "persistentVolumeClaim": {"claimName": "tuneserve-jobs"}})
        container["volumeMounts"].append({"name": "jobs", "mountPath": "/jobs"})

    def shared_jobs(deployments: dict, docs: list[dict]) -> None:
        (claim,) = [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
        claim["spec"]["accessModes"] = ["ReadWriteMany"]

    def jobs_on_cache(deployments: dict, docs: list[dict]) -> None:
        _, container = deployments["tuneserve-trainer"]
        for e in container["env"]:
            if e["name"] == "TUNESERVE_TRAINING__JOBS_DIR":
                e["value"] = "/var/cache/tuneserve/jobs"

    assert "Deployment tuneserve container tuneserve: a serving pod mounts no volume claim" in _broken(
        serving_claim
    )
    errors = _broken(shared_jobs)
    assert "PersistentVolumeClaim tuneserve-jobs: ReadWriteMany" in errors
    assert "volume jobs must be a ReadWriteOnce claim" in errors
    assert "TUNESERVE_TRAINING__JOBS_DIR (/var/cache/tuneserve/jobs) must lie on its own claim" in _broken(
        jobs_on_cache
    )


def test_validator_refuses_literal_credentials_and_a_local_root() -> None:
    def literal_key(deployments: dict, docs: list[dict]) -> None:
        _, container = deployments["tuneserve"]
        container["env"].append({"name": "AWS_SECRET_ACCESS_KEY", "value": "not-a-secret"})
        container["envFrom"] = [r for r in container["envFrom"] if "secretRef" not in r]

    def key_in_config_map(deployments: dict, docs: list[dict]) -> None:
        (config,) = [d for d in docs if d["kind"] == "ConfigMap"]
        config["data"]["AWS_ACCESS_KEY_ID"] = "AKIA..."

    def local_root(deployments: dict, docs: list[dict]) -> None:
        _, container = deployments["tuneserve"]
        container["env"].append({"name": "TUNESERVE_MODEL_ROOT", "value": "/models"})

    errors = _broken(literal_key)
    assert "['AWS_SECRET_ACCESS_KEY'] must come from a Secret, not a literal" in errors
    assert "Deployment tuneserve container tuneserve: AWS credentials must come from a Secret" in errors
    errors = _broken(key_in_config_map)
    assert "['AWS_ACCESS_KEY_ID'] belong in a Secret" in errors
    assert "tuneserve-trainer container tuneserve: ['AWS_ACCESS_KEY_ID'] must come from a Secret" in errors
    errors = _broken(local_root)
    assert "must share one s3:// model root" in errors
    assert "tuneserve: env ['TUNESERVE_MODEL_ROOT'] hides the value of its envFrom ConfigMap" in errors


def test_validator_refuses_a_cache_off_its_emptydir_or_past_its_size_limit() -> None:
    def no_cache_volume(deployments: dict, docs: list[dict]) -> None:
        pod, container = deployments["tuneserve"]
        pod["volumes"] = [v for v in pod["volumes"] if v["name"] != "cache"]
        container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] != "cache"]

    def tight_limit(deployments: dict, docs: list[dict]) -> None:
        pod, _ = deployments["tuneserve-trainer"]
        (cache,) = [v for v in pod["volumes"] if v["name"] == "cache"]
        cache["emptyDir"]["sizeLimit"] = "4Gi"  # = TUNESERVE_CACHE_MAX_BYTES: no headroom

    assert "tuneserve: TUNESERVE_CACHE_DIR (/var/cache/tuneserve) must be an emptyDir mount" in _broken(
        no_cache_volume
    )
    assert "tuneserve-trainer container tuneserve: the cache emptyDir needs a sizeLimit (4Gi)" in _broken(
        tight_limit
    )


def test_validator_keeps_a_local_store_on_one_shared_claim() -> None:
    validate = _validator()
    docs = _render("cpu")
    pod, container = _deployments(docs)["tuneserve"]
    container["env"] = [e for e in container["env"] if e["name"] != "TUNESERVE_MODEL_ROOT"]
    assert validate.check_storage(docs) == []  # the image's /models, on the claim
    pod["volumes"] = [v for v in pod["volumes"] if v["name"] != "models"]
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] != "models"]
    assert "the model root /models is on no PersistentVolumeClaim" in "\n".join(validate.check_storage(docs))


def test_quantity_reads_kubernetes_sizes() -> None:
    quantity = _validator().quantity
    assert quantity("6Gi") == 6 * 1024**3 and quantity("500M") == 500e6 and quantity("1024") == 1024
    assert quantity("1.5Ki") == 1536 and quantity("6 GB") is None and quantity(None) is None


KSERVE = ROOT / "deploy" / "kserve"


def _kserve() -> tuple[ModuleType, list[dict]]:
    spec = importlib.util.spec_from_file_location("kserve_validate", KSERVE / "validate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    docs = [d for f in sorted(KSERVE.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    return module, docs


def test_kserve_manifests_validate_against_kserves_crd_schemas() -> None:
    validate, docs = _kserve()
    assert {d["kind"] for d in docs} == {"ServingRuntime", "InferenceService"}
    assert validate.validate(docs) == []
    for name in validate.SCHEMAS.values():  # vendored with their source named
        schema = json.loads((KSERVE / "schemas" / name).read_text())
        assert schema["x-source"].startswith("github.com/kserve/kserve config/crd/full/")


def test_kserve_runtime_serves_what_the_server_listens_on() -> None:
    validate, docs = _kserve()
    [runtime] = [d for d in docs if d["kind"] == "ServingRuntime"]
    container = runtime["spec"]["containers"][0]
    args = container["args"]
    assert validate._flag(args, "--model-root") == "/mnt/models" and "--no-training" in args
    ports = validate._ports(runtime)
    assert ports["grpc-v2"] != ports["v2"] and ports["v2"] is not None
    assert container["readinessProbe"]["grpc"]["port"] == ports["grpc-v2"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": ports["v2"]}
    assert runtime["spec"]["annotations"]["prometheus.kserve.io/port"] == str(DEFAULTS["metrics_port"])
    assert container["image"] == "tuneserve:serve-cpu" and "serve-cpu" in TARGETS


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (
            lambda d: d[1]["spec"]["predictor"]["model"].update(storageURI="s3://x"),
            "'storageURI' was unexpected",
        ),
        (lambda d: d[0]["spec"]["containers"][0].update(imagePullPolicy=3), "is not of type 'string'"),
        (lambda d: d[0].update(apiVersion="serving.kserve.io/v1beta1"), "the CRD serves"),
        (lambda d: d[1]["spec"]["predictor"]["model"]["modelFormat"].update(name="onnx"), "modelFormat"),
        (lambda d: d[1]["spec"]["predictor"]["model"]["ports"][0].update(containerPort=8080), "port 8080"),
        (lambda d: d[1]["spec"]["predictor"]["model"].update(protocolVersion="v1"), "protocolVersion"),
        (lambda d: d[1]["spec"]["predictor"]["model"].update(runtime="triton"), "runtime 'triton'"),
        (lambda d: d[0]["spec"]["containers"][0].update(image="tuneserve:train"), "serve-cpu"),
        (lambda d: d[0]["spec"]["containers"][0]["args"].remove("--no-training"), "training must be off"),
    ],
)
def test_kserve_validator_refuses(change: Callable[[list[dict]], None], error: str) -> None:
    validate, docs = _kserve()
    docs.sort(key=lambda d: d["kind"] != "ServingRuntime")  # [runtime, inference service]
    change(docs)
    errors = validate.validate(docs)
    assert any(error in e for e in errors), errors


def test_images_record_the_git_commit_they_are_built_from() -> None:
    """`--build-arg TUNESERVE_GIT_COMMIT=...` reaches the environment of every image (models' lineage)."""
    stages = dockerfile_stages()
    for target in TARGETS:
        chain = stage_chain(stages, target)
        assert 'ARG TUNESERVE_GIT_COMMIT=""' in chain, target
        assert "ENV TUNESERVE_GIT_COMMIT=${TUNESERVE_GIT_COMMIT}" in chain, target
