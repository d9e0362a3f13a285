"""The security and availability rules the cluster design relies on, checked on the rendered
Kubernetes manifests (schema validation cannot see them: every one of these is valid YAML).

Usage: python policy.py --base BASE.yaml [--overlay OVERLAY.yaml]
BASE is `kubectl kustomize deploy/kubernetes/base`, OVERLAY an overlay rendered the same way.
The workload rules run on the overlay (what gets applied), or on the base when there is no
overlay. Prints one line per rule; exits non-zero if any is broken, naming what broke it.
"""

import argparse
import re
import sys

import yaml

NODE = ("DaemonSet", "sandlot-node")
CONTROL = ("Deployment", "sandlot-control")
# What a node must never hold: each would let an escaped sandbox act beyond its host.
KEYS_NODES_MUST_NOT_SEE = {"api-key", "database-url", "token-private-key"}
POD_TEMPLATE_KINDS = {"Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job"}
SECRET_LIKE_ENV = re.compile(r"KEY|TOKEN|PASSWORD|SECRET|DATABASE_URL")


def load(path):
    with open(path) as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def ident(doc):
    return (doc["kind"], doc["metadata"]["name"])


def pod_spec(doc):
    if doc["kind"] == "Pod":
        return doc["spec"]
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if doc["kind"] in POD_TEMPLATE_KINDS:
        return doc["spec"]["template"]["spec"]
    return None


def workloads(docs):
    """(kind/name, pod spec) of everything that runs Pods."""
    for doc in docs:
        spec = pod_spec(doc)
        if spec is not None:
            yield doc, spec


def containers(spec):
    return spec.get("initContainers", []) + spec.get("containers", [])


def find(docs, kind, name):
    return next((d for d in docs if ident(d) == (kind, name)), None)


def secret_refs(spec):
    """(secret name, key or None for every key) of each Secret a pod spec reads."""
    for c in containers(spec):
        for env in c.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                yield ref["name"], ref["key"]
        for src in c.get("envFrom", []):
            if "secretRef" in src:
                yield src["secretRef"]["name"], None
    for vol in spec.get("volumes", []):
        sources = [vol] + vol.get("projected", {}).get("sources", [])
        for src in sources:
            secret = src.get("secret")
            if not secret:
                continue
            name = secret.get("secretName") or secret.get("name")
            items = secret.get("items")
            if items:
                for item in items:
                    yield name, item["key"]
            else:
                yield name, None


# --- rules on the workloads ---------------------------------------------------------------


def only_the_node_daemonset_is_privileged_or_uses_the_host(docs):
    for doc, spec in workloads(docs):
        if ident(doc) == NODE:
            continue
        for c in containers(spec):
            sc = c.get("securityContext", {})
            if sc.get("privileged") or sc.get("capabilities", {}).get("add"):
                yield f"{ident(doc)} container {c['name']} is privileged or adds capabilities"
        if spec.get("hostNetwork"):
            yield f"{ident(doc)} sets hostNetwork"
        if any("hostPath" in v for v in spec.get("volumes", [])):
            yield f"{ident(doc)} mounts a hostPath volume"


def no_pod_shares_the_host_pid_or_ipc_namespace(docs):
    for doc, spec in workloads(docs):
        for field in ("hostPID", "hostIPC"):
            if spec.get(field):
                yield f"{ident(doc)} sets {field}"


def the_node_daemonset_is_updated_only_on_delete(docs):
    node = find(docs, *NODE)
    if node is None:
        yield f"no {NODE} in the manifests"
        return
    strategy = node["spec"].get("updateStrategy", {}).get("type", "RollingUpdate")
    if strategy != "OnDelete":
        yield f"updateStrategy is {strategy}: a rollout would fail every running process"


def every_container_has_readiness_and_liveness_probes(docs):
    for doc, spec in workloads(docs):
        for c in spec.get("containers", []):
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in c:
                    yield f"{ident(doc)} container {c['name']} has no {probe}"


def no_pod_gets_a_service_account_token(docs):
    for doc, spec in workloads(docs):
        if spec.get("automountServiceAccountToken") is not False:
            yield f"{ident(doc)} does not set automountServiceAccountToken: false"


def the_control_pods_are_non_root_read_only_and_without_capabilities(docs):
    control = find(docs, *CONTROL)
    if control is None:
        yield f"no {CONTROL} in the manifests"
        return
    spec = pod_spec(control)
    pod_sc = spec.get("securityContext", {})
    for c in containers(spec):
        sc = {**pod_sc, **c.get("securityContext", {})}
        if sc.get("runAsNonRoot") is not True:
            yield f"container {c['name']} may run as root"
        if sc.get("readOnlyRootFilesystem") is not True:
            yield f"container {c['name']} has a writable root filesystem"
        if sc.get("allowPrivilegeEscalation") is not False:
            yield f"container {c['name']} allows privilege escalation"
        if "ALL" not in sc.get("capabilities", {}).get("drop", []):
            yield f"container {c['name']} does not drop ALL capabilities"
        if sc.get("seccompProfile", {}).get("type") not in ("RuntimeDefault", "Localhost"):
            yield f"container {c['name']} has no seccomp profile"


def node_pods_never_see_the_api_key_database_url_or_private_key(docs):
    node = find(docs, *NODE)
    if node is None:
        yield f"no {NODE} in the manifests"
        return
    for name, key in secret_refs(pod_spec(node)):
        if key is None:  # the whole Secret: judge it by the keys it holds here, if rendered
            secret = find(docs, "Secret", name)
            keys = set((secret or {}).get("data", {})) | set((secret or {}).get("stringData", {}))
        else:
            keys = {key}
        for bad in sorted(keys & KEYS_NODES_MUST_NOT_SEE):
            yield f"the node reads {bad} from Secret {name}"


def control_has_two_or_more_replicas_and_a_disruption_budget(docs):
    control = find(docs, *CONTROL)
    if control is None:
        yield f"no {CONTROL} in the manifests"
        return
    replicas = control["spec"].get("replicas", 1)
    if replicas < 2:
        yield f"{replicas} replica(s): one restart would take the API and the router down"
    labels = control["spec"]["template"]["metadata"].get("labels", {})
    namespace = control["metadata"].get("namespace")
    for pdb in (d for d in docs if d["kind"] == "PodDisruptionBudget"):
        selector = pdb["spec"].get("selector", {}).get("matchLabels", {})
        if (
            pdb["metadata"].get("namespace") == namespace
            and selector
            and selector.items() <= labels.items()
            and pdb["spec"].get("minAvailable", 0) >= 1
        ):
            return
    yield "no PodDisruptionBudget with minAvailable >= 1 selects the control pods"


def every_secret_a_pod_reads_is_rendered_in_its_namespace(docs):
    secrets = {
        (d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs if d["kind"] == "Secret"
    }
    for doc, spec in workloads(docs):
        namespace = doc["metadata"].get("namespace")
        for name, _ in secret_refs(spec):
            if (namespace, name) not in secrets:
                yield f"{ident(doc)} reads Secret {name}, which is not rendered in namespace {namespace}"


# --- rules on the base --------------------------------------------------------------------


def the_base_inlines_no_secret_values(docs):
    for doc in docs:
        if doc["kind"] == "Secret":
            yield f"the base defines Secret {doc['metadata']['name']}: secrets belong in overlays"
    for doc, spec in workloads(docs):
        for c in containers(spec):
            for env in c.get("env", []):
                name = env["name"]
                if SECRET_LIKE_ENV.search(name) and not name.endswith("_FILE") and "value" in env:
                    yield f"{ident(doc)} sets {name} inline; read it from a Secret"


WORKLOAD_RULES = [
    only_the_node_daemonset_is_privileged_or_uses_the_host,
    no_pod_shares_the_host_pid_or_ipc_namespace,
    the_node_daemonset_is_updated_only_on_delete,
    every_container_has_readiness_and_liveness_probes,
    no_pod_gets_a_service_account_token,
    the_control_pods_are_non_root_read_only_and_without_capabilities,
    node_pods_never_see_the_api_key_database_url_or_private_key,
    control_has_two_or_more_replicas_and_a_disruption_budget,
]
OVERLAY_RULES = [every_secret_a_pod_reads_is_rendered_in_its_namespace]
BASE_RULES = [the_base_inlines_no_secret_values]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True)
    parser.add_argument("--overlay")
    args = parser.parse_args()
    base = load(args.base)
    plan = [(rule, base) for rule in BASE_RULES]
    if args.overlay:
        overlay = load(args.overlay)
        plan += [(rule, overlay) for rule in WORKLOAD_RULES + OVERLAY_RULES]
    else:
        plan += [(rule, base) for rule in WORKLOAD_RULES]
    broken = 0
    for rule, docs in plan:
        problems = list(rule(docs))
        label = rule.__name__.replace("_", " ")
        print(f"{'ok  ' if not problems else 'FAIL'} {label}")
        for problem in problems:
            print(f"       {problem}")
        broken += bool(problems)
    print(f"{len(plan) - broken} rules hold, {broken} broken")
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
