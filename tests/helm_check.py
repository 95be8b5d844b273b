#!/usr/bin/python3
"""Checks a rendered chart (the output of helm template or tests/helmrender), every document
parsed as YAML:
  - every document has a known kind at a known apiVersion, a name, and no name twice per kind;
  - every container has resources (requests and limits, cpu and memory); the Deployments'
    containers have a liveness probe on /health and a readiness probe on /ready, on a port the
    container declares; other pod controllers' long-running containers have both probes;
  - every Job is a helm.sh/hook pre-install,pre-upgrade;
  - every HorizontalPodAutoscaler targets a Deployment of the rendering (apps/v1), which then
    leaves replicas to it;
  - every selector (Deployment/StatefulSet own, Service, PodDisruptionBudget, NetworkPolicy
    podSelector and podSelector peers) matches the labels of pods of the rendering, and when
    there are NetworkPolicies every pod is selected by one;
  - every Secret and ConfigMap referenced (envFrom, secretKeyRef/configMapKeyRef, volumes, Ingress
    TLS, imagePullSecrets, Dapr's app-token-secret annotation) is one the rendering makes, with
    the key referenced unless the reference is optional, or one named with --external;
  - every serviceAccountName is a ServiceAccount of the rendering or "default".
Prints one line per problem and exits 1 when there is any.

  helm_check.py [--external NAME]... RENDERED.yaml
"""
import sys

import yaml

KNOWN = {
    "v1": {"ConfigMap", "Secret", "Service", "ServiceAccount", "PersistentVolumeClaim"},
    "apps/v1": {"Deployment", "StatefulSet", "DaemonSet"},
    "batch/v1": {"Job", "CronJob"},
    "autoscaling/v2": {"HorizontalPodAutoscaler"},
    "policy/v1": {"PodDisruptionBudget"},
    "networking.k8s.io/v1": {"Ingress", "NetworkPolicy"},
    "rbac.authorization.k8s.io/v1": {"Role", "RoleBinding"},
}
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job")
problems = []


def problem(doc, msg):
    problems.append("%s %s: %s" % (doc.get("kind"), doc.get("metadata", {}).get("name"), msg))


def selects(selector, labels):
    """Does a LabelSelector (matchLabels, matchExpressions) select these labels?"""
    if not selector:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, vals = e["key"], e["operator"], e.get("values") or []
        ok = {"In": key in labels and labels[key] in vals,
              "NotIn": key not in labels or labels[key] not in vals,
              "Exists": key in labels, "DoesNotExist": key not in labels}[op]
        if not ok:
            return False
    return True


def pod_spec(doc):
    return doc.get("spec", {}).get("template", {}).get("spec", {})


def pod_labels(doc):
    return doc.get("spec", {}).get("template", {}).get("metadata", {}).get("labels") or {}


def check_probes(doc, c):
    ports = {p.get("name") for p in c.get("ports") or []} | {
        p.get("containerPort") for p in c.get("ports") or []}
    want = {"livenessProbe": "/health", "readinessProbe": "/ready"}
    for probe, path in want.items():
        p = c.get(probe)
        if not p:
            if doc["kind"] != "Job":
                problem(doc, "container %s has no %s" % (c.get("name"), probe))
            continue
        if doc["kind"] != "Deployment":
            continue
        get = p.get("httpGet") or {}
        if get.get("path") != path:
            problem(doc, "container %s: %s is not an HTTP GET of %s" % (c.get("name"), probe, path))
        if get.get("port") not in ports:
            problem(doc, "container %s: %s port %s is not a port of the container"
                    % (c.get("name"), probe, get.get("port")))


def check_containers(doc):
    spec = pod_spec(doc)
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        res = c.get("resources") or {}
        for kind in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if not (res.get(kind) or {}).get(r):
                    problem(doc, "container %s has no resources.%s.%s" % (c.get("name"), kind, r))
        if c in (spec.get("containers") or []):
            check_probes(doc, c)


def references(doc):
    """(kind, name, key or None, optional) of every Secret/ConfigMap the document refers to."""
    refs = []
    spec = pod_spec(doc)
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        for ef in c.get("envFrom") or []:
            for field, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                if field in ef:
                    refs.append((kind, ef[field].get("name"), None, ef[field].get("optional", False)))
        for e in c.get("env") or []:
            vf = e.get("valueFrom") or {}
            for field, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                if field in vf:
                    r = vf[field]
                    refs.append((kind, r.get("name"), r.get("key"), r.get("optional", False)))
    for v in spec.get("volumes") or []:
        if "secret" in v:
            refs.append(("Secret", v["secret"].get("secretName"), None, v["secret"].get("optional", False)))
        if "configMap" in v:
            refs.append(("ConfigMap", v["configMap"].get("name"), None, v["configMap"].get("optional", False)))
        for s in (v.get("projected") or {}).get("sources") or []:
            for field, kind in (("configMap", "ConfigMap"), ("secret", "Secret")):
                if field in s:
                    refs.append((kind, s[field].get("name"), None, s[field].get("optional", False)))
    for s in spec.get("imagePullSecrets") or []:
        refs.append(("Secret", s.get("name"), None, False))
    ann = doc.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations") or {}
    if "dapr.io/app-token-secret" in ann:
        refs.append(("Secret", ann["dapr.io/app-token-secret"], "token", False))
    if doc["kind"] == "Ingress":
        for t in doc.get("spec", {}).get("tls") or []:
            refs.append(("Secret", t.get("secretName"), None, False))
    return refs


def check_refs(doc, made, external):
    for kind, name, key, optional in references(doc):
        if (kind, name) in made:
            keys = made[(kind, name)]
            if key is not None and key not in keys and not optional:
                problem(doc, "refers to key %s of %s %s, which has no such key" % (key, kind, name))
        elif name not in external:
            problem(doc, "refers to %s %s, which the chart does not make and which is not external"
                    % (kind, name))
    sa = pod_spec(doc).get("serviceAccountName")
    if sa and sa != "default" and ("ServiceAccount", sa) not in made and sa not in external:
        problem(doc, "runs as ServiceAccount %s, which does not exist" % sa)


def check_selectors(doc, pods, policies):
    kind, spec = doc["kind"], doc.get("spec", {})
    def any_pod(sel):
        return any(selects(sel, labels) for _, labels in pods)
    if kind in ("Deployment", "StatefulSet", "DaemonSet"):
        if not selects(spec.get("selector"), pod_labels(doc)):
            problem(doc, "its selector does not match its own pods' labels")
    if kind == "Service" and spec.get("selector"):
        if not any_pod({"matchLabels": spec["selector"]}):
            problem(doc, "its selector %s matches no pod" % spec["selector"])
    if kind == "PodDisruptionBudget" and not any_pod(spec.get("selector")):
        problem(doc, "its selector matches no pod")
    if kind == "NetworkPolicy":
        if not any_pod(spec.get("podSelector")):
            problem(doc, "its podSelector %s matches no pod" % spec.get("podSelector"))
        for rule in (spec.get("ingress") or []) + (spec.get("egress") or []):
            for peer in (rule.get("from") or []) + (rule.get("to") or []):
                if "podSelector" in peer and "namespaceSelector" not in peer and not any_pod(peer["podSelector"]):
                    problem(doc, "a rule's podSelector %s matches no pod" % peer["podSelector"])
    if kind in ("Deployment", "StatefulSet", "DaemonSet") and policies:
        if not any(selects(p["spec"].get("podSelector"), pod_labels(doc)) for p in policies):
            problem(doc, "its pods are selected by no NetworkPolicy")


def main(argv):
    external = set()
    args = argv[1:]
    while len(args) > 1 and args[0] == "--external":
        external.add(args[1])
        args = args[2:]
    if len(args) != 1:
        sys.exit("usage: helm_check.py [--external NAME]... RENDERED.yaml")
    with open(args[0]) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    if not docs:
        sys.exit("FAIL: %s has no documents" % args[0])
    made, seen = {}, set()
    for d in docs:
        kind, api, name = d.get("kind"), d.get("apiVersion"), (d.get("metadata") or {}).get("name")
        if kind not in KNOWN.get(api, ()):
            problem(d, "unknown kind %s at apiVersion %s" % (kind, api))
        if not name or (kind, name) in seen:
            problem(d, "no name, or the name twice")
        seen.add((kind, name))
        if kind in ("Secret", "ConfigMap"):
            made[(kind, name)] = set(d.get("data") or {}) | set(d.get("stringData") or {})
        if kind == "ServiceAccount":
            made[(kind, name)] = set()
    pods = [(d, pod_labels(d)) for d in docs if d["kind"] in WORKLOADS]
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    for d in docs:
        if d["kind"] in WORKLOADS:
            check_containers(d)
        check_refs(d, made, external)
        check_selectors(d, pods, policies)
        if d["kind"] == "Job":
            hook = (d["metadata"].get("annotations") or {}).get("helm.sh/hook")
            if hook != "pre-install,pre-upgrade":
                problem(d, "is not a helm.sh/hook pre-install,pre-upgrade (%s)" % hook)
        if d["kind"] == "HorizontalPodAutoscaler":
            t = d["spec"].get("scaleTargetRef") or {}
            target = deployments.get(t.get("name"))
            if t.get("kind") != "Deployment" or t.get("apiVersion") != "apps/v1" or target is None:
                problem(d, "targets %s %s %s, which is not a Deployment of the chart"
                        % (t.get("apiVersion"), t.get("kind"), t.get("name")))
            elif "replicas" in target["spec"]:
                problem(d, "targets %s, which sets replicas itself" % t.get("name"))
    for p in dict.fromkeys(problems):
        print("FAIL: %s: %s" % (args[0], p))
    if problems:
        return 1
    print("%s: %d documents checked" % (args[0], len(docs)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
