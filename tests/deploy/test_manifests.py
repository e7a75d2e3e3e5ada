"""The Kubernetes manifests, the Dockerfile and the Dask config in ``cluster/``, checked offline.

Built-in kinds are validated strictly (unknown fields rejected) against the Kubernetes JSON schemas that
the ``kubernetes-validate`` package ships. The DaskCluster custom resource has no schema there: its
required fields (from the dask-kubernetes operator's CRD) are checked here, and its embedded PodSpecs and
ServiceSpec are validated as Pods and a Service. Cross-references (Secret keys, ConfigMaps, the scheduler
Service the Job connects to, the spec file it runs, its CLI arguments) are checked too.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "cluster" / "k8s"
K8S_VERSION = "1.30.0"


def load_all() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path.name, doc))
    return docs


DOCS = load_all()


def by_kind(kind: str) -> list[dict]:
    return [d for _, d in DOCS if d["kind"] == kind]


def one(kind: str, name: str) -> dict:
    found = [d for d in by_kind(kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name!r}, found {len(found)}"
    return found[0]


def validate(doc: dict) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_manifests_exist():
    kinds = {d["kind"] for _, d in DOCS}
    assert {"DaskCluster", "Job", "ConfigMap", "Secret", "Namespace"} <= kinds


@pytest.mark.parametrize("name,doc", [(f, d) for f, d in DOCS if d["kind"] != "DaskCluster"],
                         ids=lambda x: x if isinstance(x, str) else f"{x['kind']}/{x['metadata']['name']}")
def test_builtin_kinds_validate_strictly(name, doc):
    validate(doc)
    assert doc["metadata"].get("namespace", "geoproc") == "geoproc" or doc["kind"] == "Namespace"


def test_validation_rejects_a_broken_manifest():
    """The validator used above does reject mistakes (a misspelt field, a wrong type)."""
    import kubernetes_validate

    job = yaml.safe_load((K8S / "job.yaml").read_text())
    job["spec"]["template"]["spec"]["containers"][0]["imagePullPolicey"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(job)
    job = yaml.safe_load((K8S / "job.yaml").read_text())
    job["spec"]["backoffLimit"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(job)


def _pod(spec: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "check"}, "spec": spec}


def test_daskcluster_matches_the_operator_crd():
    dc = one("DaskCluster", "geoproc")
    assert dc["apiVersion"] == "kubernetes.dask.org/v1"
    spec = dc["spec"]
    # required by the CRD: spec.scheduler.{spec,service}, spec.worker.spec
    assert {"scheduler", "worker"} <= set(spec)
    assert {"spec", "service"} <= set(spec["scheduler"]) and "spec" in spec["worker"]
    assert set(spec) <= {"scheduler", "worker", "idleTimeout"}
    assert isinstance(spec.get("idleTimeout", 0), int)
    assert isinstance(spec["worker"].get("replicas", 1), int) and spec["worker"]["replicas"] >= 1
    validate(_pod(spec["scheduler"]["spec"]))
    validate(_pod(spec["worker"]["spec"]))
    validate({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "check"},
              "spec": spec["scheduler"]["service"]})
    # the operator labels scheduler pods with these; the Service must select them
    assert spec["scheduler"]["service"]["selector"] == {"dask.org/cluster-name": dc["metadata"]["name"],
                                                       "dask.org/component": "scheduler"}
    ports = {p["name"]: p for p in spec["scheduler"]["service"]["ports"]}
    sched = spec["scheduler"]["spec"]["containers"][0]
    named = {p["name"]: p["containerPort"] for p in sched["ports"]}
    assert ports["tcp-comm"]["targetPort"] in named and named[ports["tcp-comm"]["targetPort"]] == 8786
    args = sched["args"]
    assert args[:2] == ["dask", "scheduler"] and args[args.index("--port") + 1] == "8786"
    worker = spec["worker"]["spec"]["containers"][0]
    assert worker["args"][:2] == ["dask", "worker"] and "$(DASK_WORKER_NAME)" in worker["args"]


def test_workers_get_no_credentials_and_all_pods_share_one_image():
    dc = one("DaskCluster", "geoproc")
    job = one("Job", "geoproc-run")
    pods = [dc["spec"]["scheduler"]["spec"], dc["spec"]["worker"]["spec"], job["spec"]["template"]["spec"]]
    images = {c["image"] for p in pods for c in p["containers"]}
    assert len(images) == 1, images  # scheduler, workers and driver must run the same Dask and geoproc
    for c in dc["spec"]["worker"]["spec"]["containers"]:
        text = yaml.safe_dump(c)
        assert "AZURE" not in text.upper() and "secret" not in text.lower()
        assert not c.get("env") and not c.get("envFrom")


def test_job_runs_geoproc_against_the_scheduler_service_with_a_postgres_ledger(tmp_path):
    import typer.main

    from geoproc.api import load_spec
    from geoproc.cli import app
    from geoproc.jobs import get_job

    job = one("Job", "geoproc-run")
    dc = one("DaskCluster", "geoproc")
    pod = job["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["command"] == ["geoproc"] and c["args"][0] == "run"
    # the CLI accepts these arguments as they are
    run_cmd = typer.main.get_command(app).commands["run"]
    ctx = run_cmd.make_context("run", list(c["args"][1:]))
    cluster = ctx.params["cluster"]
    m = re.fullmatch(r"tcp://([a-z0-9-]+)(?:\.geoproc(?:\.svc(?:\.cluster\.local)?)?)?:(\d+)", cluster)
    assert m, cluster
    # the operator names the scheduler Service <cluster name>-scheduler
    assert m.group(1) == f"{dc['metadata']['name']}-scheduler"
    comm = next(p for p in dc["spec"]["scheduler"]["service"]["ports"] if p["name"] == "tcp-comm")
    assert int(m.group(2)) == comm["port"]

    # the ledger URL comes from a Secret that exists and has that key, and it is PostgreSQL
    (ledger_env,) = [e for e in c["env"] if e["name"] == "GEOPROC_LEDGER"]
    ref = ledger_env["valueFrom"]["secretKeyRef"]
    secret = one("Secret", ref["name"])
    assert secret["stringData"][ref["key"]].startswith("postgresql://")
    for src in c.get("envFrom", []):
        kind, name = ("ConfigMap", src["configMapRef"]["name"]) if "configMapRef" in src \
            else ("Secret", src["secretRef"]["name"])
        one(kind, name)

    # the spec file exists where the pod will look for it, and is a valid job
    spec_arg = ctx.params["job"]
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    full = str(Path(c["workingDir"]) / spec_arg)
    mount = next((p for p in mounts if full.startswith(p + "/")), None)
    if mount is not None:
        cm = one("ConfigMap", volumes[mounts[mount]]["configMap"]["name"])
        spec_file = tmp_path / Path(full).name
        spec_file.write_text(cm["data"][full[len(mount) + 1:]])
        name, params = load_spec(spec_file)
    else:
        name, params = load_spec(ROOT / spec_arg)
    get_job(name).validate(params)

    # container settings are GEOPROC_* settings geoproc knows
    from geoproc.settings import Settings

    for cm in by_kind("ConfigMap"):
        for key in cm.get("data", {}):
            if key.startswith("GEOPROC_"):
                assert key[len("GEOPROC_"):].lower() in Settings.model_fields, key


def _pip_installs(text: str) -> list[str]:
    """The targets of every ``pip install`` in a shell script or Dockerfile (options dropped)."""
    text = text.replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        m = re.match(r"\s*(?:RUN\s+)?(?:\S*python\S*\s+-m\s+)?\S*pip3?\s+install\s+(.*)", line)
        if not m:
            continue
        words = shlex.split(m.group(1).split("2>&1")[0].split("|")[0])
        out += [w for w in words if not w.startswith("-") and not w.startswith("${")]
    return out


def _split_target(target: str) -> tuple[str, set[str]]:
    m = re.fullmatch(r"([^\[]+)(?:\[([^\]]*)\])?", target)
    assert m, target
    return m.group(1), set(filter(None, (m.group(2) or "").split(",")))


def test_dockerfile_installs_what_setup_sh_and_the_readme_install():
    docker = (ROOT / "cluster" / "Dockerfile").read_text()
    setup = (ROOT / "setup.sh").read_text()
    readme = (ROOT / "README.md").read_text()
    (d_target,) = _pip_installs(docker)
    (s_target,) = _pip_installs(setup)
    d_pkg, d_extras = _split_target(d_target)
    s_pkg, s_extras = _split_target(s_target)
    assert d_pkg == s_pkg == "."  # the project itself, with the dependencies pinned in pyproject.toml
    assert "-e" in docker.split("pip install", 1)[1].split("\n", 1)[0]
    assert d_extras == s_extras - {"test"}, (d_extras, s_extras)
    # the README documents the image's install line verbatim
    line = re.search(r"pip install [^\n]*", docker.split("RUN python -m ", 1)[1]).group(0)
    assert line in readme, f"README does not show the image's install step: {line}"
    # everything the image copies exists, and the Dask config it ships is the one tested below
    for m in re.finditer(r"^COPY (.+) (\S+)$", docker, re.M):
        for src in m.group(1).split():
            assert (ROOT / src).exists(), src
    assert "COPY cluster/dask.yaml /etc/dask/dask.yaml" in docker and "DASK_CONFIG=/etc/dask" in docker


def test_dask_config_uses_only_keys_dask_knows():
    import dask.config
    import distributed  # noqa: F401  (loads distributed's defaults into dask.config)

    conf = yaml.safe_load((ROOT / "cluster" / "dask.yaml").read_text())

    def leaves(x, path=()):
        if isinstance(x, dict):
            for k, v in x.items():
                yield from leaves(v, (*path, k))
        else:
            yield path, x

    n = 0
    for path, _value in leaves(conf):
        node = dask.config.config
        for i, k in enumerate(path):
            assert isinstance(node, dict) and k in node, f"unknown Dask config key {'.'.join(path[:i + 1])}"
            node = node[k]
        n += 1
    assert n >= 5
    # and Dask reads the file as intended
    merged = dask.config.collect(paths=[str(ROOT / "cluster")], env={})
    assert merged["distributed"]["worker"]["memory"]["spill"] == 0.70
