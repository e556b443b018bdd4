#!/usr/bin/env bash
# The Kubernetes manifests under deploy/ are valid: every core resource against the
# Kubernetes schemas (kubernetes-validate from PyPI, in a virtualenv under the target
# directory, strict: unknown fields fail), the kustomization lists exactly the files there
# are (and builds, when kubectl is installed), and the custom resources (RabbitmqCluster,
# ScaledObject, TriggerAuthentication) say what docs/scaling.md relies on. Their own schemas
# are published with the operators, not on PyPI, and this check runs where only the package
# registries answer: it says so and checks their fields itself instead.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=scripts/lib/common.sh
. "$root/scripts/lib/common.sh"
cd "$root"
base=deploy/kubernetes/base
fail=0
pass() { echo "PASS $*"; }
failed() {
    echo "FAIL $*"
    fail=1
}

venv="$TARGET_DIR/deploy-venv"
validate="$venv/bin/kubernetes-validate"
if [ ! -x "$validate" ]; then
    say "installing kubernetes-validate into $venv"
    python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$venv/bin/pip" install -q 'kubernetes-validate==1.37.0' || die "pip install kubernetes-validate failed"
fi

# Core resources: strict validation. kubernetes-validate prints WARN (and exits 0) for kinds it
# has no schema for; those are the custom resources, checked below.
out="$("$validate" --strict "$base"/*.yaml 2>&1)" || {
    echo "$out"
    failed "kubernetes-validate"
}
if echo "$out" | grep -E '^(ERROR|FAIL)|Couldn.t parse'; then
    failed "kubernetes-validate reported errors"
fi
validated="$(echo "$out" | grep -c '^INFO .* passed' || true)"
if [ "$validated" -ge 6 ]; then
    pass "$validated core resources valid against the Kubernetes 1.37 schemas"
else
    failed "only $validated core resources validated"
fi
echo "$out" | grep -oE "Couldn't find schema for kind [A-Za-z]+ with api version [^ ]+" | sort -u |
    grep -v 'kind Kustomization ' |
    sed -E 's/^Couldn.t find schema for kind ([A-Za-z]+) with api version ([^ ]+)/SKIP schema of \1 (\2): a custom resource whose schema comes with its operator, not from PyPI; its fields are checked below/'

# The custom resources and the cross-references between files.
if "$venv/bin/python" - "$base" <<'PY'; then pass "custom resources and references"; else failed "custom resources and references"; fi
import glob, os, sys, yaml

base = sys.argv[1]
docs = {}
for path in sorted(glob.glob(os.path.join(base, "*.yaml"))):
    with open(path) as f:
        for doc in yaml.safe_load_all(f):
            if doc:
                docs.setdefault(doc["kind"], []).append((os.path.basename(path), doc))
errors = []
def check(ok, what):
    if not ok:
        errors.append(what)

kust = docs["Kustomization"][0][1]
listed = set(kust["resources"])
present = {os.path.basename(p) for p in glob.glob(os.path.join(base, "*.yaml"))} - {"kustomization.yaml"}
check(listed == present, f"kustomization resources {sorted(listed)} != files {sorted(present)}")

deployments = {d["metadata"]["name"]: d for _, d in docs.get("Deployment", [])}
for name, d in deployments.items():
    pod = d["spec"]["template"]["spec"]
    c = pod["containers"][0]
    check(pod["securityContext"].get("runAsNonRoot") is True, f"{name}: runAsNonRoot")
    check(c["securityContext"].get("readOnlyRootFilesystem") is True, f"{name}: read-only root filesystem")
    check("requests" in c.get("resources", {}) and "memory" in c["resources"].get("limits", {}), f"{name}: resources")
    check(c.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz", f"{name}: readiness probe on /readyz")
    check(c.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/livez", f"{name}: liveness probe on /livez")
    refs = [e.get("secretRef", {}).get("name") for e in c.get("envFrom", [])]
    check(f"{name}-secrets" in refs, f"{name}: secrets by reference")
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    vols = {v["name"]: v.get("secret", {}).get("secretName") for v in pod.get("volumes", [])}
    check(vols.get(mounts.get("/etc/worker-kit/tls/rabbitmq")) == "worker-kit-rabbitmq-ca", f"{name}: the broker's CA mounted where AMQP_TLS_CA_FILE points")
    check(pod["terminationGracePeriodSeconds"] * 1000 > 30000, f"{name}: grace period above DRAIN_TIMEOUT_MS")
pdbs = {p["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] for _, p in docs.get("PodDisruptionBudget", [])}
check(pdbs == set(deployments), f"a PodDisruptionBudget per Deployment: {pdbs}")

rmq = docs["RabbitmqCluster"][0][1]
check(rmq["apiVersion"] == "rabbitmq.com/v1beta1", "RabbitmqCluster apiVersion")
check(rmq["spec"]["replicas"] == 3, "RabbitmqCluster has 3 replicas")
tls = rmq["spec"].get("tls", {})
check(tls.get("secretName") and tls.get("caSecretName") == "worker-kit-rabbitmq-ca" and tls.get("disableNonTLSListeners") is True, f"RabbitmqCluster listens for TLS only: {tls}")
config = docs["ConfigMap"][0][1]["data"]
check(config.get("AMQP_TLS_CA_FILE") == "/etc/worker-kit/tls/rabbitmq/ca.crt", "worker-kit-config names the broker's CA file")

so = docs["ScaledObject"][0][1]
check(so["apiVersion"] == "keda.sh/v1alpha1", "ScaledObject apiVersion")
target = so["spec"]["scaleTargetRef"]["name"]
check(target in deployments, f"ScaledObject scales a Deployment of the base ({target})")
trig = so["spec"]["triggers"][0]
check(trig["type"] == "rabbitmq" and trig["metadata"]["mode"] == "QueueLength", "ScaledObject scales on queue length")
check(isinstance(trig["metadata"]["value"], str), "trigger metadata values are strings")
auth = trig["authenticationRef"]["name"]
check(auth in {d["metadata"]["name"] for _, d in docs.get("TriggerAuthentication", [])}, f"TriggerAuthentication {auth} exists")
hpas = {h["spec"]["scaleTargetRef"]["name"] for _, h in docs.get("HorizontalPodAutoscaler", [])}
check(target not in hpas, "no HorizontalPodAutoscaler beside KEDA's for the same Deployment")
for e in errors:
    print("  " + e)
sys.exit(1 if errors else 0)
PY

# The parking alerts: well-formed rules over the broker's per-queue metric, which the broker
# pods are annotated to be scraped for, and which the dashboard's parking panel shows.
if "$venv/bin/python" - "$base" <<'PY'; then pass "parking alert rules"; else failed "parking alert rules"; fi
import json, os, sys, yaml

base = sys.argv[1]
errors = []
rules = yaml.safe_load(open("deploy/prometheus/worker-kit-parking.rules.yaml"))["groups"][0]["rules"]
for r in rules:
    for key in ("alert", "expr", "for"):
        if key not in r:
            errors.append(f"rule {r.get('alert')}: no {key}")
    if r.get("labels", {}).get("severity") not in ("warning", "critical"):
        errors.append(f"rule {r.get('alert')}: severity")
    if "summary" not in r.get("annotations", {}):
        errors.append(f"rule {r.get('alert')}: no summary")
    if 'rabbitmq_queue_messages{queue=~".+\\\\.dead"}' not in r["expr"]:
        errors.append(f"rule {r.get('alert')}: not over the parking queues' depth: {r['expr']}")
rmq = [d for d in yaml.safe_load_all(open(os.path.join(base, "rabbitmq-cluster.yaml"))) if d][0]
ann = rmq["spec"]["override"]["statefulSet"]["spec"]["template"]["metadata"]["annotations"]
if ann.get("prometheus.io/path") != "/metrics/per-object" or ann.get("prometheus.io/port") != "15692":
    errors.append(f"the broker pods are not scraped for per-queue metrics: {ann}")
dash = json.load(open("deploy/grafana/worker-kit.json"))
exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
if not any("rabbitmq_queue_messages" in e and ".dead" in e for e in exprs):
    errors.append("no dashboard panel shows the parking queues' depth")
for e in errors:
    print("  " + e)
sys.exit(1 if errors else 0)
PY

# A Deployment for every service of the repository.
missing=""
for svc in $(service_names); do
    grep -q "^  name: $svc$" "$base/$svc-deployment.yaml" 2>/dev/null || missing="$missing $svc"
done
if [ -z "$missing" ]; then pass "a Deployment for every service"; else failed "no Deployment for:$missing"; fi

# deploy/README's connection strings are the safe ones: amqps:// and sslmode=verify-full with a CA.
urls="$(grep -oE "(amqps?|postgres(ql)?)://[^' ]+" deploy/README.md)"
if [ -n "$urls" ] && ! echo "$urls" | grep -qE '^amqp://' &&
    ! echo "$urls" | grep -E '^postgres' | grep -qv 'sslmode=verify-full&sslrootcert=/etc/worker-kit/tls/postgres/ca.crt'; then
    pass "deploy/README's URLs are amqps:// and its DSNs sslmode=verify-full with sslrootcert"
else
    failed "deploy/README has a plaintext amqp:// URL or a DSN without sslmode=verify-full and sslrootcert"
fi

# The broker's message cap is the development broker's (and the kit's default MAX_MESSAGE_BYTES).
cap() { grep -oE 'max_message_size = [0-9]+' "$1" | grep -oE '[0-9]+$'; }
if [ "$(cap rabbitmq-configs/rabbitmq.conf)" = "$(cap "$base/rabbitmq-cluster.yaml")" ] &&
    [ "$(cap rabbitmq-configs/rabbitmq.conf)" = "$(cap scripts/lib/cluster.sh)" ]; then
    pass "max_message_size agrees with rabbitmq-configs/rabbitmq.conf"
else
    failed "max_message_size differs between rabbitmq-configs/rabbitmq.conf, $base/rabbitmq-cluster.yaml and scripts/lib/cluster.sh"
fi

# The work-queue route the ScaledObject watches is one the service serves.
queue="$(grep -oE 'queueName: [^ ]+' "$base/example-scaledobject.yaml" | cut -d' ' -f2)"
if grep -q "\"$queue\"" services/example/src/lib.rs; then
    pass "ScaledObject watches the example's route $queue"
else
    failed "ScaledObject watches $queue, which services/example does not serve"
fi

if command -v kubectl >/dev/null 2>&1; then
    if kubectl kustomize "$base" >/dev/null; then pass "kubectl kustomize builds the base"; else failed "kubectl kustomize"; fi
else
    echo "SKIP kubectl kustomize: kubectl is not installed"
fi
exit "$fail"
