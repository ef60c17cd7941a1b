"""Renders the chart with every values file in eerp/ci/, with and without the Prometheus
Operator's CRDs, and checks what comes out (run by check.sh, which provides HELM and
VALIDATE):

- `helm lint --strict` passes and every object passes `kubernetes-validate --strict`;
- the pods keep the restricted security context and probe /livez and /readyz;
- ServiceMonitor and PrometheusRule appear only when the cluster has their CRDs, and the
  rule groups are dashboards/alerts/eerp.rules.yml unchanged (and pass `promtool check
  rules` when promtool is installed); the dashboards ConfigMap holds dashboards/*.json;
- HPA and PDB follow their values; a misspelt value or a missing required one fails.
"""

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CHART = os.path.join(HERE, "eerp")
HELM = os.environ["HELM"]
VALIDATE = os.environ["VALIDATE"]
CRDS = ["monitoring.coreos.com/v1/ServiceMonitor", "monitoring.coreos.com/v1/PrometheusRule"]
failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
        print(f"FAIL {what}")


def helm(*args):
    done = subprocess.run([HELM, *args], capture_output=True, text=True)
    # Helm notes the files/dashboards symlink on stderr; that is expected.
    return done.returncode, done.stdout, done.stderr


def render(values, crds):
    flags = [f for api in CRDS for f in ("--api-versions", api)] if crds else []
    code, out, err = helm("template", "eerp", CHART, "-f", values, *flags)
    if code != 0:
        sys.exit(f"helm template -f {values} failed:\n{err}")
    return out, [d for d in yaml.safe_load_all(out) if d]


def validate(text, label):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    done = subprocess.run([VALIDATE, "--strict", "--quiet", "--no-warn", f.name],
                          capture_output=True, text=True)
    os.unlink(f.name)
    check(done.returncode == 0, f"kubernetes-validate --strict ({label}):\n{done.stdout}{done.stderr}")


def pods(objects):
    for o in objects:
        if o["kind"] in ("Deployment", "Job"):
            yield o["metadata"]["name"], o["spec"]["template"]["spec"]


def check_pods(objects, label):
    for name, spec in pods(objects):
        context = spec.get("securityContext", {})
        check(context.get("runAsNonRoot") is True, f"{label}: {name} may run as root")
        check(context.get("seccompProfile", {}).get("type") == "RuntimeDefault",
              f"{label}: {name} has no RuntimeDefault seccomp profile")
        for c in spec["containers"]:
            sc = c.get("securityContext", {})
            check(sc.get("allowPrivilegeEscalation") is False, f"{label}: {c['name']} may escalate")
            check(sc.get("readOnlyRootFilesystem") is True, f"{label}: {c['name']} root is writable")
            check(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{label}: {c['name']} keeps capabilities")
            check("resources" in c, f"{label}: {c['name']} has no resources")
    server = next((s for n, s in pods(objects) if not n.endswith("-migrate")), None)
    check(server is not None, f"{label}: no Deployment")
    if server:
        c = server["containers"][0]
        check(c["readinessProbe"]["httpGet"]["path"] == "/readyz", f"{label}: readiness is not /readyz")
        check(c["livenessProbe"]["httpGet"]["path"] == "/livez", f"{label}: liveness is not /livez")
        check(c["startupProbe"]["httpGet"]["path"] == "/livez", f"{label}: startup is not /livez")


def check_monitoring(objects, values, crds, label):
    kinds = {o["kind"]: o for o in objects}
    metrics = values.get("metrics", {})
    for kind, key in (("ServiceMonitor", "serviceMonitor"), ("PrometheusRule", "prometheusRule")):
        wanted = crds and metrics.get(key, {}).get("enabled", True)
        check((kind in kinds) == wanted, f"{label}: {kind} {'missing' if wanted else 'rendered without its CRD'}")
    rule = kinds.get("PrometheusRule")
    if rule:
        with open(os.path.join(ROOT, "dashboards/alerts/eerp.rules.yml")) as f:
            check(rule["spec"] == yaml.safe_load(f), f"{label}: the PrometheusRule differs from dashboards/alerts")
        if shutil.which("promtool"):
            with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
                yaml.safe_dump(rule["spec"], f)
            done = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True, text=True)
            os.unlink(f.name)
            check(done.returncode == 0, f"{label}: promtool check rules: {done.stdout}{done.stderr}")
    monitor = kinds.get("ServiceMonitor")
    if monitor:
        ops = [o for o in objects if o["kind"] == "Service"
               and o["metadata"]["labels"].get("app.kubernetes.io/component") == "metrics"]
        selector = monitor["spec"]["selector"]["matchLabels"]
        check(len(ops) == 1 and selector.items() <= ops[0]["metadata"]["labels"].items(),
              f"{label}: the ServiceMonitor selects no metrics Service")
        check(ops and ops[0]["spec"]["ports"][0]["name"] == monitor["spec"]["endpoints"][0]["port"],
              f"{label}: the ServiceMonitor's port is not the metrics Service's")
    dashboards = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-dashboards")]
    if values.get("dashboards", {}).get("enabled", True):
        expected = {}
        for path in glob.glob(os.path.join(ROOT, "dashboards/*.json")):
            with open(path) as f:
                expected[os.path.basename(path)] = json.load(f)
        got = {k: json.loads(v) for k, v in dashboards[0]["data"].items()} if dashboards else {}
        check(got == expected, f"{label}: the dashboards ConfigMap differs from dashboards/*.json")
    else:
        check(not dashboards, f"{label}: dashboards rendered while disabled")


def check_scaling(objects, values, label):
    kinds = [o["kind"] for o in objects]
    check(("HorizontalPodAutoscaler" in kinds) == values.get("autoscaling", {}).get("enabled", False),
          f"{label}: HPA does not follow autoscaling.enabled")
    check(("PodDisruptionBudget" in kinds) == values.get("podDisruptionBudget", {}).get("enabled", True),
          f"{label}: PDB does not follow podDisruptionBudget.enabled")
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    check(("replicas" in deployment["spec"]) != values.get("autoscaling", {}).get("enabled", False),
          f"{label}: replicas set together with the HPA, or neither")


def check_refusals():
    base = os.path.join(CHART, "ci/default-values.yaml")
    for args, why in (
        (["--set", "replicaCont=3"], "a misspelt top-level value"),
        (["--set", "database.poolsize=3"], "a misspelt nested value"),
        (["--set", "database.existingSecret="], "no database Secret"),
        (["--set", "auth.hs256.secret=s"], "two key sources"),
    ):
        code, _, err = helm("template", "eerp", CHART, "-f", base, *args)
        check(code != 0, f"helm template accepted {why}")
    _, _, err = helm("template", "eerp", CHART, "-f", base, "--set", "database.existingSecret=")
    check("existingSecret" in err, f"the missing Secret's error does not say what to set: {err}")


def main():
    for values_file in sorted(glob.glob(os.path.join(CHART, "ci/*.yaml"))):
        with open(values_file) as f:
            values = yaml.safe_load(f) or {}
        name = os.path.basename(values_file)
        code, out, err = helm("lint", "--strict", CHART, "-f", values_file)
        check(code == 0, f"helm lint --strict -f {name}:\n{out}{err}")
        for crds in (False, True):
            label = f"{name}, {'with' if crds else 'without'} the monitoring CRDs"
            text, objects = render(values_file, crds)
            validate(text, label)
            check_pods(objects, label)
            check_monitoring(objects, values, crds, label)
            check_scaling(objects, values, label)
            print(f"checked {label}: {len(objects)} objects")
    check_refusals()
    if failures:
        sys.exit(f"{len(failures)} chart check(s) failed")
    print("chart checks passed")


if __name__ == "__main__":
    main()
