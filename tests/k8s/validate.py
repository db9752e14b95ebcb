#!/usr/bin/env python3
"""Strict, offline validator for the Kubernetes and KServe manifests sandscore generates.

Why this exists: the tests render deployment manifests (Deployment, Service,
ConfigMap, KServe ServingRuntime / InferenceService, ...), but no cluster,
API server, kubectl or KServe admission webhook is reachable where the tests
run.  This script is the independent judge the tests call instead: it must
reject anything a real cluster would reject (and a few things that would only
break at run time), so keep it strict.

How each object is checked:

* Core Kubernetes kinds (apiVersion "v1", "apps/v1", "batch/v1",
  "networking.k8s.io/v1", ...): the kubernetes-validate library's Python API,
  in STRICT mode (unknown fields rejected), against its bundled Kubernetes
  1.37.0 JSON schema; then a subset of API-server semantics the schema cannot
  express (name/label syntax, quantity syntax, base64 of binaryData, int32
  ranges, well-known enums, selector matches template labels, volume mounts
  name declared volumes, probe handler and port checks, requests <= limits ...).

* KServe kinds (serving.kserve.io/v1beta1 InferenceService,
  serving.kserve.io/v1alpha1 ServingRuntime / ClusterServingRuntime): the
  kserve wheel ships no JSON schema, so the object is walked against KServe's
  generated Python SDK model classes (kserve.models, imported without running
  kserve/__init__.py, which would pull in fastapi & co) and the Kubernetes
  python client's models for embedded core types: unknown JSON keys and wrong
  scalar types are rejected with their path, then the model instances are
  built bottom-up so the SDK's own client-side validation (required fields;
  the pydantic-based kubernetes models also check types and forbid extras)
  runs.  Embedded core types (V1Container, V1Volume, ...) are additionally
  checked against the same Kubernetes 1.37 strict schema definitions, and a
  few KServe webhook rules are applied (InferenceService name, storageUri
  scheme, protocol versions, one predictor implementation).

* Anything else: "unknown kind".

Usage:  validate.py FILE_OR_DIR...
  Reads every *.yaml / *.yml / *.json (directories recursively); YAML files may
  hold several documents; a v1 List is expanded into its items.
  Prints one line per object, "ok  Kind/name", or one or more
  "FAIL Kind/name: reason" lines.
  Exit status: 0 all valid, 1 any object invalid (or unparsable file),
  2 usage / IO / missing-dependency errors.

Dependencies: pinned in deps/k8s-validate.lock, e.g.
  python3 -m venv VENV
  VENV/bin/pip install --require-hashes --no-deps -r deps/k8s-validate.lock
  VENV/bin/python tests/k8s/validate.py path/to/manifests
"""

import base64
import decimal
import importlib
import importlib.util
import json
import os
import re
import sys
import types

K8S_VERSION = "1.37.0"
K8S_MAJOR_MINOR = "1.37"
KSERVE_GROUP = "serving.kserve.io"
# (apiVersion, kind) -> kserve.models class name
KSERVE_KINDS = {
    ("serving.kserve.io/v1beta1", "InferenceService"): "V1beta1InferenceService",
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "V1alpha1ServingRuntime",
    ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"): "V1alpha1ClusterServingRuntime",
}
SUFFIXES = (".yaml", ".yml", ".json")

QUANTITY_DEF = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING_DEF = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"

# KServe SDK type names that are not model classes.
KSERVE_QUANTITY_TYPES = {"ResourceQuantity", "V1beta1MetricQuantity"}
# KServe protocol versions, as documented by the SDK ("v1 or v2 or grpc-v1 or grpc-v2").
KSERVE_PROTOCOLS = {"v1", "v2", "grpc-v1", "grpc-v2"}
# KServe webhook (pkg/apis/serving/v1beta1): accepted storageUri schemes; a plain
# local path (no scheme) is accepted too.
KSERVE_STORAGE_SCHEMES = {"gs", "s3", "pvc", "file", "https", "http", "hdfs", "webhdfs", "oci", "hf"}
KSERVE_PREDICTOR_IMPLS = ("model", "sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx",
                          "huggingface", "pmml", "lightgbm", "paddle")

# Enumerations the API server enforces but the bundled JSON schema does not carry:
# (definition, property) -> allowed values.
ENUMS = {
    ("io.k8s.api.core.v1.Container", "imagePullPolicy"): {"Always", "IfNotPresent", "Never"},
    ("io.k8s.api.core.v1.EphemeralContainer", "imagePullPolicy"): {"Always", "IfNotPresent", "Never"},
    ("io.k8s.api.core.v1.Container", "terminationMessagePolicy"): {"File", "FallbackToLogsOnError"},
    ("io.k8s.api.core.v1.ContainerPort", "protocol"): {"TCP", "UDP", "SCTP"},
    ("io.k8s.api.core.v1.ServicePort", "protocol"): {"TCP", "UDP", "SCTP"},
    ("io.k8s.api.core.v1.ServiceSpec", "type"): {"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"},
    ("io.k8s.api.core.v1.ServiceSpec", "sessionAffinity"): {"ClientIP", "None"},
    ("io.k8s.api.core.v1.ServiceSpec", "externalTrafficPolicy"): {"Cluster", "Local"},
    ("io.k8s.api.core.v1.ServiceSpec", "internalTrafficPolicy"): {"Cluster", "Local"},
    ("io.k8s.api.core.v1.PodSpec", "restartPolicy"): {"Always", "OnFailure", "Never"},
    ("io.k8s.api.core.v1.PodSpec", "dnsPolicy"): {"ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"},
    ("io.k8s.api.core.v1.HTTPGetAction", "scheme"): {"HTTP", "HTTPS"},
    ("io.k8s.api.core.v1.Toleration", "effect"): {"NoSchedule", "PreferNoSchedule", "NoExecute"},
    ("io.k8s.api.core.v1.SeccompProfile", "type"): {"Localhost", "RuntimeDefault", "Unconfined"},
    ("io.k8s.api.core.v1.PodSecurityContext", "fsGroupChangePolicy"): {"OnRootMismatch", "Always"},
    ("io.k8s.api.core.v1.SecurityContext", "procMount"): {"Default", "Unmasked"},
    ("io.k8s.api.core.v1.NodeSelectorRequirement", "operator"): {"In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"},
    ("io.k8s.api.core.v1.PersistentVolumeClaimSpec", "volumeMode"): {"Filesystem", "Block"},
    ("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement", "operator"):
        {"In", "NotIn", "Exists", "DoesNotExist"},
    ("io.k8s.api.apps.v1.DeploymentStrategy", "type"): {"Recreate", "RollingUpdate"},
    ("io.k8s.api.apps.v1.StatefulSetSpec", "podManagementPolicy"): {"OrderedReady", "Parallel"},
    ("io.k8s.api.apps.v1.DaemonSetUpdateStrategy", "type"): {"RollingUpdate", "OnDelete"},
    ("io.k8s.api.apps.v1.StatefulSetUpdateStrategy", "type"): {"RollingUpdate", "OnDelete"},
}

WORKLOAD_KINDS = {("apps", "Deployment"), ("apps", "ReplicaSet"), ("apps", "StatefulSet"), ("apps", "DaemonSet")}

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$")
QUANTITY_SCALE = {
    "": 1, "n": decimal.Decimal("1e-9"), "u": decimal.Decimal("1e-6"), "m": decimal.Decimal("1e-3"),
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}


class UsageError(Exception):
    pass


# --------------------------------------------------------------------------- imports

def _die(msg):
    print("error: " + msg, file=sys.stderr)
    sys.exit(2)


def import_libraries():
    """Import the validation libraries (see deps/k8s-validate.lock)."""
    global yaml, jsonschema, referencing, kubernetes_validate, KS, K8S, KSConfiguration
    try:
        import yaml
        import jsonschema
        import referencing
        import kubernetes_validate
        import kubernetes.client.models as K8S
        # kserve/__init__.py imports the model server (fastapi, grpc, ...): register a bare
        # package module for "kserve" so that only kserve.models (and kserve.configuration,
        # which the models use) are executed.
        if "kserve" not in sys.modules:
            spec = importlib.util.find_spec("kserve")
            if spec is None or not spec.submodule_search_locations:
                raise ImportError("No module named 'kserve'")
            stub = types.ModuleType("kserve")
            stub.__path__ = list(spec.submodule_search_locations)
            sys.modules["kserve"] = stub
        import kserve.models as KS
        from kserve.configuration import Configuration as KSConfiguration
    except ImportError as e:
        _die("%s\n  install the validator's dependencies into a venv and run with its python:\n"
             "  python3 -m venv VENV && VENV/bin/pip install --require-hashes --no-deps "
             "-r deps/k8s-validate.lock" % e)
    if kubernetes_validate.__version__ != K8S_VERSION:
        _die("kubernetes-validate %s installed, %s expected (deps/k8s-validate.lock)"
             % (kubernetes_validate.__version__, K8S_VERSION))


# --------------------------------------------------------------------------- helpers

def fmt_path(parts):
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += "[%d]" % p
        elif re.match(r"^[A-Za-z_][A-Za-z0-9_-]*$", p):
            out += ("." if out else "") + p
        else:
            out += "[%s]" % json.dumps(p)
    return out or "(root)"


def jtype(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def parse_quantity(v):
    """Quantity (str or number) -> Decimal, or None when not a valid quantity."""
    if is_number(v):
        return decimal.Decimal(str(v))
    if not isinstance(v, str):
        return None
    m = QUANTITY.match(v)
    if not m:
        return None
    num, suffix = decimal.Decimal(m.group(1)), m.group(2) or ""
    if suffix[:1] in ("e", "E"):
        return num * (decimal.Decimal(10) ** int(suffix[1:]))
    return num * decimal.Decimal(QUANTITY_SCALE[suffix])


class Errors(list):
    def add(self, path, msg):
        self.append("%s: %s" % (fmt_path(path), msg))


# --------------------------------------------------------------------------- loading

def _yaml_loader():
    class Loader(yaml.SafeLoader):
        pass

    # Like kubectl (YAML -> JSON), keep timestamps as strings.
    Loader.yaml_implicit_resolvers = {
        ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(loader, node):
        loader.flatten_mapping(node)
        out = {}
        for knode, vnode in node.value:
            key = loader.construct_object(knode, deep=True)
            if not isinstance(key, str):
                raise yaml.constructor.ConstructorError(
                    None, None, "mapping key %r is not a string" % (key,), knode.start_mark)
            if key in out:
                raise yaml.constructor.ConstructorError(
                    None, None, "duplicate mapping key %r" % key, knode.start_mark)
            out[key] = loader.construct_object(vnode, deep=True)
        return out

    Loader.add_constructor("tag:yaml.org,2002:map", construct_mapping)
    # A bare "=" scalar (see pyyaml issue 89), as kubernetes-validate handles it.
    Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))
    return Loader


def _json_no_dupes(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError("duplicate key %r" % k)
        out[k] = v
    return out


def collect_files(args):
    files = []
    for arg in args:
        if os.path.isdir(arg):
            found = []
            for root, dirs, names in os.walk(arg):
                dirs.sort()
                found += [os.path.join(root, n) for n in sorted(names) if n.endswith(SUFFIXES)]
            if not found:
                raise UsageError("%s: no *.yaml, *.yml or *.json files in this directory" % arg)
            files += found
        elif os.path.isfile(arg):
            files.append(arg)
        else:
            raise UsageError("%s: no such file or directory" % arg)
    return files


def load_documents(path, loader):
    """List of documents (None for empty YAML documents dropped). Raises ValueError on parse errors."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError("%s: %s" % (path, e))
    try:
        if path.endswith(".json"):
            return [json.loads(text, object_pairs_hook=_json_no_dupes)]
        return [d for d in yaml.load_all(text, Loader=loader) if d is not None]
    except (yaml.YAMLError, ValueError) as e:
        if isinstance(e, yaml.MarkedYAMLError) and e.problem_mark is not None:
            mark = e.problem_mark
            raise ValueError("line %d, column %d: %s%s" % (
                mark.line + 1, mark.column + 1, (e.context + ", ") if e.context else "", e.problem))
        raise ValueError(" ".join(str(e).split()))


# --------------------------------------------------------------------------- k8s schema

class Schema:
    """The Kubernetes 1.37 strict definitions bundled with kubernetes-validate."""

    def __init__(self):
        import importlib_resources
        ref = importlib_resources.files("kubernetes_validate").joinpath(
            "kubernetes-json-schema/v%s-local-strict/_definitions.json" % K8S_VERSION)
        doc = json.loads(ref.read_text())
        self.doc = doc
        self.id = doc["$id"]
        self.defs = doc["$defs"]
        self.gvk = {}
        by_name = {}
        for name, d in self.defs.items():
            for g in d.get("x-kubernetes-group-version-kind") or []:
                self.gvk[(g.get("group", ""), g.get("version"), g.get("kind"))] = name
            parts = name.split(".")
            by_name.setdefault((parts[-2], parts[-1]), []).append(name)
        self.by_name = by_name
        self.registry = referencing.Resource.from_contents(doc) @ referencing.Registry()
        self._validators = {}
        self._class_defs = {}

    def def_for_class(self, cls):
        """kubernetes.client model class -> definition name (matched on name and property set)."""
        if cls in self._class_defs:
            return self._class_defs[cls]
        result = None
        m = re.fullmatch(r"([A-Z][a-z]+)?(V\d+(?:alpha\d+|beta\d+)?)([A-Z]\w*)", cls.__name__)
        if m:
            group, ver, kind = m.groups()
            cands = self.by_name.get((ver.lower(), kind), [])
            if group:
                cands = [c for c in cands if c.split(".")[-3].lower() == group.lower()]
            props = set(cls.attribute_map.values())
            exact = [c for c in cands if set(self.defs[c].get("properties", {})) == props]
            if len(exact) == 1:
                result = exact[0]
        self._class_defs[cls] = result
        return result

    def prop_ref(self, def_name, key):
        """Which special type a property has: 'quantity', 'intorstr' or None."""
        if not def_name:
            return None
        prop = self.defs[def_name].get("properties", {}).get(key) or {}
        for s in (prop, prop.get("additionalProperties"), prop.get("items")):
            if isinstance(s, dict) and "$ref" in s:
                target = s["$ref"].split("#/$defs/")[-1]
                if target == QUANTITY_DEF:
                    return "quantity"
                if target == INT_OR_STRING_DEF:
                    return "intorstr"
        return None

    def validate_def(self, def_name, data, path, errs):
        v = self._validators.get(def_name)
        if v is None:
            v = jsonschema.validators.Draft202012Validator(
                {"$ref": "%s#/$defs/%s" % (self.id, def_name)}, registry=self.registry)
            self._validators[def_name] = v
        for e in sorted(v.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
            errs.add(path + list(e.absolute_path), e.message)

    def walk(self, value, schema, path, errs, def_name=None):
        """Schema-guided checks the JSON schema cannot express: quantity syntax, base64
        ("format: byte"), int32/int64 ranges and the ENUMS table."""
        ref = schema.get("$ref")
        if ref:
            def_name = ref.split("#/$defs/")[-1]
            if def_name == QUANTITY_DEF:
                if value is not None and parse_quantity(value) is None:
                    errs.add(path, "invalid quantity %r (expected e.g. 500m, 1, 1.5, 128Mi, 2Gi, 1e3)" % (value,))
                return
            if def_name == INT_OR_STRING_DEF:
                return
            schema = self.defs.get(def_name, {})
        fmt = schema.get("format")
        if fmt == "byte" and isinstance(value, str):
            try:
                base64.b64decode(value.replace("\n", "").replace("\r", ""), validate=True)
            except ValueError:
                errs.add(path, "not valid base64 data")
        elif fmt in ("int32", "int64") and is_int(value):
            bits = 31 if fmt == "int32" else 63
            if not -(2 ** bits) <= value < 2 ** bits:
                errs.add(path, "%d out of %s range" % (value, fmt))
        if isinstance(value, dict):
            props = schema.get("properties") or {}
            addl = schema.get("additionalProperties")
            for k, v in value.items():
                if k in props:
                    allowed = ENUMS.get((def_name, k))
                    if allowed and v is not None and v not in allowed:
                        errs.add(path + [k], "unsupported value %r: supported values: %s"
                                 % (v, ", ".join('"%s"' % a for a in sorted(allowed))))
                    self.walk(v, props[k], path + [k], errs, None)
                elif isinstance(addl, dict):
                    self.walk(v, addl, path + [k], errs, None)
        elif isinstance(value, list) and isinstance(schema.get("items"), dict):
            for i, v in enumerate(value):
                self.walk(v, schema["items"], path + [i], errs, None)

    def walk_def(self, def_name, value, path, errs):
        self.walk(value, {"$ref": "#/$defs/" + def_name}, path, errs)


SCHEMA = None


# --------------------------------------------------------------------------- semantic checks

def check_qualified_name(key, path, errs, what):
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        errs.add(path, "%s %r: prefix must be a DNS-1123 subdomain" % (what, key))
    if not name or len(name) > 63 or not QUALIFIED_NAME.match(name):
        errs.add(path, "%s %r: name part must be 1-63 alphanumerics, '-', '_' or '.', "
                       "starting and ending with an alphanumeric" % (what, key))


def check_labels(labels, path, errs):
    if not isinstance(labels, dict):
        return
    for k, v in labels.items():
        check_qualified_name(k, path + [k], errs, "label key")
        if isinstance(v, str) and (len(v) > 63 or not LABEL_VALUE.match(v)):
            errs.add(path + [k], "label value %r: must be at most 63 alphanumerics, '-', '_' or '.', "
                                 "starting and ending with an alphanumeric" % v)


def check_name(name, rule, path, errs):
    if rule == "dns1035":
        ok, desc = len(name) <= 63 and DNS1035_LABEL.match(name), \
            "a DNS-1035 label (lower case alphanumerics or '-', starting with a letter, at most 63)"
    elif rule == "dns1123label":
        ok, desc = len(name) <= 63 and DNS1123_LABEL.match(name), \
            "a DNS-1123 label (lower case alphanumerics or '-', at most 63)"
    elif rule == "isvc":
        ok, desc = len(name) <= 63 and DNS1035_LABEL.match(name), \
            "an InferenceService name (regex [a-z]([-a-z0-9]*[a-z0-9])?)"
    elif rule == "pathsegment":
        ok, desc = name not in (".", "..") and "/" not in name and "%" not in name, \
            "a path segment name (no '/', '%', '.' or '..')"
    else:
        ok, desc = len(name) <= 253 and DNS1123_SUBDOMAIN.match(name), \
            "a DNS-1123 subdomain (lower case alphanumerics, '-' or '.', at most 253)"
    if not ok:
        errs.add(path, "invalid name %r: must be %s" % (name, desc))


def check_metadata(obj, rule, errs):
    md = obj.get("metadata")
    if not isinstance(md, dict):
        errs.add(["metadata"], "required (with a name)")
        return
    name, gen = md.get("name"), md.get("generateName")
    if not name and not gen:
        errs.add(["metadata", "name"], "required")
    elif isinstance(name, str) and name:
        check_name(name, rule, ["metadata", "name"], errs)
    ns = md.get("namespace")
    if isinstance(ns, str) and ns and not (len(ns) <= 63 and DNS1123_LABEL.match(ns)):
        errs.add(["metadata", "namespace"], "invalid namespace %r: must be a DNS-1123 label" % ns)
    check_labels(md.get("labels"), ["metadata", "labels"], errs)
    ann = md.get("annotations")
    if isinstance(ann, dict):
        for k in ann:
            check_qualified_name(k, ["metadata", "annotations", k], errs, "annotation key")
        size = sum(len(k) + len(v) for k, v in ann.items() if isinstance(v, str))
        if size > 256 * 1024:
            errs.add(["metadata", "annotations"], "total size %d exceeds 262144 bytes" % size)


def selector_matches(selector, labels):
    labels = labels or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for req in selector.get("matchExpressions") or []:
        op, key, values = req.get("operator"), req.get("key"), req.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def check_selector(selector, path, errs):
    for i, req in enumerate(selector.get("matchExpressions") or []):
        op, values = req.get("operator"), req.get("values") or []
        if op in ("In", "NotIn") and not values:
            errs.add(path + ["matchExpressions", i, "values"], "must be specified when operator is %s" % op)
        if op in ("Exists", "DoesNotExist") and values:
            errs.add(path + ["matchExpressions", i, "values"], "may not be specified when operator is %s" % op)
    check_labels(selector.get("matchLabels"), path + ["matchLabels"], errs)


def check_port_ref(port, path, errs, declared, lint_named):
    if is_int(port):
        if not 1 <= port <= 65535:
            errs.add(path, "port %d must be between 1 and 65535" % port)
    elif isinstance(port, str):
        if not (len(port) <= 15 and IANA_SVC_NAME.match(port) and "--" not in port
                and re.search("[a-z]", port)):
            errs.add(path, "invalid port name %r: must be an IANA_SVC_NAME (at most 15 lower case "
                           "alphanumerics or '-', with a letter, no '--')" % port)
        elif lint_named and port not in declared:
            errs.add(path, "named port %r is not declared in this container's ports" % port)


def check_container(c, path, errs, volumes, lint_named_ports=True):
    if not isinstance(c, dict):
        return
    name = c.get("name")
    if isinstance(name, str) and name and not (len(name) <= 63 and DNS1123_LABEL.match(name)):
        errs.add(path + ["name"], "invalid container name %r: must be a DNS-1123 label" % name)
    declared = set()
    for i, p in enumerate(c.get("ports") or []):
        if not isinstance(p, dict):
            continue
        for field in ("containerPort", "hostPort"):
            v = p.get(field)
            if is_int(v) and not (1 <= v <= 65535) and not (field == "hostPort" and v == 0):
                errs.add(path + ["ports", i, field], "%d must be between 1 and 65535" % v)
        pname = p.get("name")
        if isinstance(pname, str):
            check_port_ref(pname, path + ["ports", i, "name"], errs, (), False)
            if pname in declared:
                errs.add(path + ["ports", i, "name"], "duplicate port name %r" % pname)
            declared.add(pname)
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        pr = c.get(probe)
        if not isinstance(pr, dict):
            continue
        handlers = [h for h in ("exec", "httpGet", "tcpSocket", "grpc") if pr.get(h) is not None]
        if len(handlers) != 1:
            errs.add(path + [probe], "must specify exactly one handler of exec, httpGet, tcpSocket, grpc "
                                     "(got %s)" % (", ".join(handlers) or "none"))
        for h in ("httpGet", "tcpSocket"):
            if isinstance(pr.get(h), dict) and "port" in pr[h]:
                check_port_ref(pr[h]["port"], path + [probe, h, "port"], errs, declared, lint_named_ports)
        if isinstance(pr.get("grpc"), dict) and "port" in pr["grpc"]:
            check_port_ref(pr["grpc"]["port"], path + [probe, "grpc", "port"], errs, declared, False)
    mounts = set()
    for i, m in enumerate(c.get("volumeMounts") or []):
        if not isinstance(m, dict):
            continue
        if volumes is not None and m.get("name") not in volumes:
            errs.add(path + ["volumeMounts", i, "name"], "volume %r not found in the pod's volumes" % m.get("name"))
        mp = m.get("mountPath")
        if isinstance(mp, str):
            if mp in mounts:
                errs.add(path + ["volumeMounts", i, "mountPath"], "%r must be unique" % mp)
            mounts.add(mp)
    res = c.get("resources")
    if isinstance(res, dict) and isinstance(res.get("limits"), dict) and isinstance(res.get("requests"), dict):
        for rname, req in res["requests"].items():
            if rname in res["limits"]:
                r, lim = parse_quantity(req), parse_quantity(res["limits"][rname])
                if r is not None and lim is not None and r > lim:
                    errs.add(path + ["resources", "requests", rname],
                             "%s must be less than or equal to the %s limit of %s" % (req, rname, res["limits"][rname]))


def check_pod_spec(spec, path, errs, extra_containers=()):
    """extra_containers: [(container_dict, path, lint_named_ports)] checked alongside."""
    if not isinstance(spec, dict):
        return
    volumes = set()
    for i, v in enumerate(spec.get("volumes") or []):
        if not isinstance(v, dict):
            continue
        n = v.get("name")
        if isinstance(n, str):
            if not (len(n) <= 63 and DNS1123_LABEL.match(n)):
                errs.add(path + ["volumes", i, "name"], "invalid volume name %r: must be a DNS-1123 label" % n)
            if n in volumes:
                errs.add(path + ["volumes", i, "name"], "duplicate volume name %r" % n)
            volumes.add(n)
    names = set()
    todo = []
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for i, c in enumerate(spec.get(field) or []):
            todo.append((c, path + [field, i], True))
    todo += list(extra_containers)
    for c, cpath, lint in todo:
        check_container(c, cpath, errs, volumes, lint)
        n = c.get("name") if isinstance(c, dict) else None
        if isinstance(n, str) and n:
            if n in names:
                errs.add(cpath + ["name"], "duplicate container name %r" % n)
            names.add(n)
    check_labels(spec.get("nodeSelector"), path + ["nodeSelector"], errs)


def core_semantics(obj, group, kind, errs):
    rule = {"Service": "dns1035", "Namespace": "dns1123label", "Role": "pathsegment",
            "ClusterRole": "pathsegment", "RoleBinding": "pathsegment",
            "ClusterRoleBinding": "pathsegment"}.get(kind, "dns1123subdomain")
    check_metadata(obj, rule, errs)
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    if (group, kind) in WORKLOAD_KINDS:
        sel = spec.get("selector")
        tmpl = spec.get("template") if isinstance(spec.get("template"), dict) else {}
        tlabels = (tmpl.get("metadata") or {}).get("labels") or {}
        if isinstance(sel, dict):
            if not sel.get("matchLabels") and not sel.get("matchExpressions"):
                errs.add(["spec", "selector"], "empty selector is invalid for %s" % kind)
            else:
                check_selector(sel, ["spec", "selector"], errs)
                if not selector_matches(sel, tlabels):
                    errs.add(["spec", "template", "metadata", "labels"],
                             "`selector` does not match template `labels`")
        check_labels(tlabels, ["spec", "template", "metadata", "labels"], errs)
        pspec = tmpl.get("spec")
        if kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet") and isinstance(pspec, dict):
            rp = pspec.get("restartPolicy")
            if rp is not None and rp != "Always":
                errs.add(["spec", "template", "spec", "restartPolicy"],
                         "unsupported value %r: only \"Always\" is supported for %s" % (rp, kind))
        check_pod_spec(pspec, ["spec", "template", "spec"], errs)
    elif (group, kind) in (("batch", "Job"), ("batch", "CronJob")):
        if kind == "Job":
            pspec, ppath = (spec.get("template") or {}).get("spec"), ["spec", "template", "spec"]
        else:
            jt = (spec.get("jobTemplate") or {}).get("spec") or {}
            pspec, ppath = (jt.get("template") or {}).get("spec"), ["spec", "jobTemplate", "spec", "template", "spec"]
        if isinstance(pspec, dict) and pspec.get("restartPolicy") not in ("OnFailure", "Never"):
            errs.add(ppath + ["restartPolicy"], "%r: a Job's pod template must set restartPolicy to "
                                                "\"OnFailure\" or \"Never\"" % (pspec.get("restartPolicy"),))
        check_pod_spec(pspec, ppath, errs)
    elif (group, kind) == ("", "Pod"):
        check_pod_spec(spec, ["spec"], errs)
    elif (group, kind) == ("", "Service"):
        ports = spec.get("ports") or []
        seen = set()
        for i, p in enumerate(ports):
            if not isinstance(p, dict):
                continue
            n = p.get("name")
            if len(ports) > 1 and not n:
                errs.add(["spec", "ports", i, "name"], "required when a Service has more than one port")
            if isinstance(n, str) and n:
                if not (len(n) <= 63 and DNS1123_LABEL.match(n)):
                    errs.add(["spec", "ports", i, "name"], "invalid port name %r: must be a DNS-1123 label" % n)
                if n in seen:
                    errs.add(["spec", "ports", i, "name"], "duplicate port name %r" % n)
                seen.add(n)
            for field in ("port", "nodePort"):
                v = p.get(field)
                if is_int(v) and not 1 <= v <= 65535:
                    errs.add(["spec", "ports", i, field], "%d must be between 1 and 65535" % v)
            if "targetPort" in p:
                check_port_ref(p["targetPort"], ["spec", "ports", i, "targetPort"], errs, (), False)
        if spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None" and not ports:
            errs.add(["spec", "ports"], "at least one port is required")
        check_labels(spec.get("selector"), ["spec", "selector"], errs)
    elif (group, kind) in (("", "ConfigMap"), ("", "Secret")):
        keys = set()
        for field in ("data", "binaryData", "stringData"):
            d = obj.get(field)
            if not isinstance(d, dict):
                continue
            for k in d:
                if len(k) > 253 or not CONFIG_KEY.match(k) or k in (".", ".."):
                    errs.add([field, k], "invalid key %r: must consist of alphanumerics, '-', '_' or '.'" % k)
                if kind == "ConfigMap" and k in keys:
                    errs.add([field, k], "duplicate of key %r in data" % k)
                keys.add(k)


# --------------------------------------------------------------------------- KServe

class KServeWalker:
    """Walks a KServe object along the SDK model classes' openapi_types / attribute_map,
    then builds the instances bottom-up (SDK client-side validation)."""

    FAIL = object()

    def __init__(self, errs):
        self.errs = errs
        self.k8s_roots = []  # (class, data, path) of embedded kubernetes.client models
        self.config = KSConfiguration()
        self.config.client_side_validation = True

    def resolve(self, name):
        m = re.fullmatch(r"K8sIoApi[A-Z][a-z]*(V\d+(?:alpha\d+|beta\d+)?)([A-Z]\w*)", name)
        if m:  # K8sIoApiAppsV1DeploymentStrategy -> V1DeploymentStrategy
            name = m.group(1) + m.group(2)
        for mod in (KS, K8S):
            c = getattr(mod, name, None)
            if isinstance(c, type) and hasattr(c, "openapi_types"):
                return c
        snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
        try:
            c = getattr(importlib.import_module("kserve.models." + snake), name, None)
        except ImportError:
            c = None
        return c if isinstance(c, type) and hasattr(c, "openapi_types") else None

    def is_k8s(self, cls):
        return cls.__module__.startswith("kubernetes.")

    def value(self, v, t, path, special, in_k8s):
        m = re.fullmatch(r"(?:list|List)\[(.*)\]", t)
        if m:
            if not isinstance(v, list):
                self.errs.add(path, "expected array (%s), got %s" % (t, jtype(v)))
                return self.FAIL
            out = [self.value(x, m.group(1), path + [i], special, in_k8s) for i, x in enumerate(v)]
            return self.FAIL if any(x is self.FAIL for x in out) else out
        m = re.fullmatch(r"dict\(str, (.*)\)|Dict\[str, (.*)\]", t)
        if m:
            if not isinstance(v, dict):
                self.errs.add(path, "expected object (%s), got %s" % (t, jtype(v)))
                return self.FAIL
            inner = m.group(1) or m.group(2)
            out = {k: self.value(x, inner, path + [k], special, in_k8s) for k, x in v.items()}
            return self.FAIL if any(x is self.FAIL for x in out.values()) else out
        if t in KSERVE_QUANTITY_TYPES or (t == "str" and special == "quantity"):
            if parse_quantity(v) is None:
                self.errs.add(path, "expected a quantity (string like 500m, 2Gi, or a number), got %s %r"
                              % (jtype(v), v))
                return self.FAIL
            return v if t in KSERVE_QUANTITY_TYPES else (v if isinstance(v, str) else str(v))
        if t == "object":
            if special == "intorstr" and not (is_int(v) or isinstance(v, str)):
                self.errs.add(path, "expected integer or string, got %s %r" % (jtype(v), v))
                return self.FAIL
            return v
        checks = {
            "str": (lambda x: isinstance(x, str), "string"),
            "int": (is_int, "integer"),
            "bool": (lambda x: isinstance(x, bool), "boolean"),
            "float": (is_number, "number"),
            "datetime": (lambda x: isinstance(x, str), "string (RFC 3339 date-time)"),
            "date": (lambda x: isinstance(x, str), "string (date)"),
            "bytes": (lambda x: isinstance(x, str), "string (base64)"),
        }
        if t in checks:
            ok, desc = checks[t]
            if not ok(v):
                self.errs.add(path, "expected %s, got %s %r" % (desc, jtype(v), v))
                return self.FAIL
            return v
        cls = self.resolve(t)
        if cls is None:
            self.errs.add(path, "cannot validate: type %r has no model class in kserve.models or "
                                "kubernetes.client.models" % t)
            return self.FAIL
        return self.model(cls, v, path, in_k8s)

    def model(self, cls, data, path, in_k8s=False):
        if not isinstance(data, dict):
            self.errs.add(path, "expected object (%s), got %s %r" % (cls.__name__, jtype(data), data))
            return self.FAIL
        k8s = self.is_k8s(cls)
        def_name = SCHEMA.def_for_class(cls) if k8s else None
        if k8s and not in_k8s:
            self.k8s_roots.append((cls, data, path))
        json_to_attr = {j: a for a, j in cls.attribute_map.items()}
        kwargs, ok = {}, True
        for key, v in data.items():
            attr = json_to_attr.get(key)
            if attr is None:
                self.errs.add(path + [key], "unknown field %r (not a field of %s)" % (key, cls.__name__))
                ok = False
                continue
            if v is None:
                continue
            built = self.value(v, cls.openapi_types[attr], path + [key],
                               SCHEMA.prop_ref(def_name, key), in_k8s or k8s)
            if built is self.FAIL:
                ok = False
            else:
                kwargs[attr] = built
        if not ok:
            return self.FAIL
        try:
            if k8s:
                return cls(**kwargs)
            return cls(local_vars_configuration=self.config, **kwargs)
        except ValueError as e:
            if hasattr(e, "errors"):  # pydantic ValidationError (kubernetes client models)
                for err in e.errors():
                    loc = [cls.attribute_map.get(x, x) if isinstance(x, str) else x for x in err["loc"]]
                    self.errs.add(path + loc, "%s (%s)" % (err["msg"], cls.__name__))
            else:
                msg = str(e)
                m = re.search(r"`(\w+)`, must not be `None`", msg)
                if m:
                    self.errs.add(path + [cls.attribute_map.get(m.group(1), m.group(1))],
                                  "required field missing (%s: %s)" % (cls.__name__, msg))
                else:
                    self.errs.add(path, "%s: %s" % (cls.__name__, msg))
            return self.FAIL
        except Exception as e:  # noqa: BLE001 - any constructor failure is a validation failure
            self.errs.add(path, "%s: %s: %s" % (cls.__name__, type(e).__name__, e))
            return self.FAIL


def kserve_semantics(obj, kind, errs):
    check_metadata(obj, "isvc" if kind == "InferenceService" else "dns1123subdomain", errs)
    if not isinstance(obj.get("spec"), dict):
        errs.add(["spec"], "required")
        return
    spec = obj["spec"]
    if kind in ("ServingRuntime", "ClusterServingRuntime"):
        if not spec.get("containers"):
            errs.add(["spec", "containers"], "at least one container is required")
        for i, pv in enumerate(spec.get("protocolVersions") or []):
            if pv not in KSERVE_PROTOCOLS:
                errs.add(["spec", "protocolVersions", i], "unsupported protocol %r (one of %s)"
                         % (pv, ", ".join(sorted(KSERVE_PROTOCOLS))))
        for i, f in enumerate(spec.get("supportedModelFormats") or []):
            if isinstance(f, dict) and not f.get("name"):
                errs.add(["spec", "supportedModelFormats", i, "name"], "required (non-empty)")
        check_pod_spec(spec, ["spec"], errs)
        return
    # InferenceService
    for comp in ("predictor", "transformer", "explainer"):
        c = spec.get(comp)
        if not isinstance(c, dict):
            continue
        base = ["spec", comp]
        extra = []
        impls = [k for k in KSERVE_PREDICTOR_IMPLS if c.get(k) is not None] if comp == "predictor" else []
        if comp == "predictor":
            if len(impls) > 1:
                errs.add(base, "exactly one of [%s] may be specified, got %s"
                         % (", ".join(KSERVE_PREDICTOR_IMPLS), ", ".join(impls)))
            if not impls and not c.get("containers"):
                errs.add(base, "one of [%s] or containers must be specified" % ", ".join(KSERVE_PREDICTOR_IMPLS))
        for impl in impls:
            m = c[impl]
            if not isinstance(m, dict):
                continue
            p = base + [impl]
            if len(impls) == 1:  # the implementation becomes the "kserve-container" container
                extra.append((dict(m, name=m.get("name") or "kserve-container"), p, bool(m.get("ports"))))
            pv = m.get("protocolVersion")
            if pv is not None and pv not in KSERVE_PROTOCOLS:
                errs.add(p + ["protocolVersion"], "unsupported protocol %r (one of %s)"
                         % (pv, ", ".join(sorted(KSERVE_PROTOCOLS))))
            mf = m.get("modelFormat")
            if isinstance(mf, dict) and not mf.get("name"):
                errs.add(p + ["modelFormat", "name"], "required (non-empty)")
            uri = m.get("storageUri")
            if isinstance(uri, str):
                check_storage_uri(uri, p + ["storageUri"], errs)
        check_pod_spec(c, base, errs, extra)


def check_storage_uri(uri, path, errs):
    if not uri:
        errs.add(path, "must not be empty")
        return
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", uri)
    if not m:
        return  # a local path, accepted by KServe
    scheme, rest = m.group(1), m.group(2)
    if scheme not in KSERVE_STORAGE_SCHEMES:
        errs.add(path, "unsupported storageUri scheme %r (supported: %s, or a local path)"
                 % (scheme + "://", ", ".join(s + "://" for s in sorted(KSERVE_STORAGE_SCHEMES))))
    elif scheme == "pvc":
        claim = rest.split("/", 1)[0]
        if not claim or len(claim) > 253 or not DNS1123_SUBDOMAIN.match(claim):
            errs.add(path, "pvc:// URI must be pvc://<claim-name>/<path> with a DNS-1123 claim name, got %r" % uri)


def validate_kserve(obj, api_version, kind, errs):
    cls_name = KSERVE_KINDS.get((api_version, kind))
    if cls_name is None:
        served = [a for (a, k) in KSERVE_KINDS if k == kind]
        if served:
            errs.add(["apiVersion"], "%s is served as %s, not %r" % (kind, " / ".join(served), api_version))
        else:
            errs.add(["kind"], "unknown kind: %s %s is not a supported KServe kind (supported: %s)"
                     % (api_version, kind, ", ".join(sorted(k for _, k in KSERVE_KINDS))))
        return
    cls = getattr(KS, cls_name)
    walker = KServeWalker(errs)
    built = walker.model(cls, obj, [])
    if built is not walker.FAIL:
        if (built.api_version, built.kind) != (api_version, kind):  # pragma: no cover - defensive
            errs.add([], "SDK object has apiVersion/kind %s/%s" % (built.api_version, built.kind))
        for k8s_cls, data, path in walker.k8s_roots:
            def_name = SCHEMA.def_for_class(k8s_cls)
            if def_name is None:
                errs.add(path, "cannot cross-check %s: no Kubernetes %s schema definition"
                         % (k8s_cls.__name__, K8S_MAJOR_MINOR))
                continue
            before = len(errs)
            SCHEMA.validate_def(def_name, data, path, errs)
            if len(errs) == before:
                SCHEMA.walk_def(def_name, data, path, errs)
    if not errs:
        kserve_semantics(obj, kind, errs)


# --------------------------------------------------------------------------- core

def validate_core(obj, api_version, kind, errs):
    try:
        got = kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        errs.add(["kind"], "unknown kind: no Kubernetes %s schema for %s in %s"
                 % (K8S_MAJOR_MINOR, kind, api_version))
        return
    except kubernetes_validate.ValidationError as e:
        errs.add(list(e.absolute_path), e.message)
        return
    if got != K8S_MAJOR_MINOR:
        errs.add([], "internal: validated against Kubernetes %s instead of %s" % (got, K8S_MAJOR_MINOR))
        return
    group, _, version = api_version.rpartition("/")
    def_name = SCHEMA.gvk.get((group, version, kind))
    if def_name:
        SCHEMA.walk_def(def_name, obj, [], errs)
    core_semantics(obj, group, kind, errs)


def classify(api_version):
    group = api_version.rpartition("/")[0]
    if group == KSERVE_GROUP:
        return "kserve"
    if group == "" or "." not in group or group.endswith(".k8s.io"):
        return "core"
    return None


def validate_object(obj):
    """-> (label, [error strings])"""
    errs = Errors()
    if not isinstance(obj, dict):
        errs.add([], "document is not a mapping (got %s)" % jtype(obj))
        return "?/?", errs
    kind, api_version = obj.get("kind"), obj.get("apiVersion")
    md = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    name = md.get("name") or md.get("generateName") or "?"
    label = "%s/%s" % (kind if isinstance(kind, str) and kind else "?", name)
    if not isinstance(api_version, str) or not api_version:
        errs.add(["apiVersion"], "required (a non-empty string)")
    if not isinstance(kind, str) or not kind:
        errs.add(["kind"], "required (a non-empty string)")
    if errs:
        return label, errs
    family = classify(api_version)
    if family == "core":
        validate_core(obj, api_version, kind, errs)
    elif family == "kserve":
        validate_kserve(obj, api_version, kind, errs)
    else:
        errs.add(["kind"], "unknown kind: %s %s is neither a Kubernetes nor a supported KServe kind"
                 % (api_version, kind))
    return label, errs


def expand(doc):
    """A v1 List expands into its items."""
    if isinstance(doc, dict) and doc.get("apiVersion") == "v1" and doc.get("kind") == "List":
        extra = set(doc) - {"apiVersion", "kind", "metadata", "items"}
        if extra or not isinstance(doc.get("items"), list):
            return [doc]  # left to the schema to reject
        out = []
        for item in doc["items"]:
            out += expand(item)
        return out
    return [doc]


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.split("\n\n")[0] + "\n\nusage: validate.py FILE_OR_DIR...",
              file=sys.stderr if not argv else sys.stdout)
        return 2 if not argv else 0
    import_libraries()
    global SCHEMA
    SCHEMA = Schema()
    loader = _yaml_loader()
    failed = False
    try:
        files = collect_files(argv)
        for path in files:
            try:
                docs = load_documents(path, loader)
            except ValueError as e:
                print("FAIL %s: cannot parse: %s" % (path, e))
                failed = True
                continue
            if not docs:
                print("FAIL %s: no Kubernetes objects in file" % path)
                failed = True
                continue
            for doc in docs:
                for obj in expand(doc):
                    label, errs = validate_object(obj)
                    if errs:
                        failed = True
                        for e in errs:
                            print("FAIL %s: %s" % (label, e))
                    else:
                        print("ok  %s" % label)
    except UsageError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
