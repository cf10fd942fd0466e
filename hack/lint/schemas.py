#!/usr/bin/env python3
"""Standalone JSON schemas for kubeconform from an API server's /openapi/v2.

    schemas.py OPENAPI_V2_JSON OUT_DIR [MANIFEST...]

Exit status 3 when a kind of a MANIFEST (apiVersion and kind read line by line
from top-level keys) has no schema: the server may not publish a new CRD yet.

One file per kind the server serves (built-in kinds and CRDs alike), named as
hack/lint/check.py's schema location template expects:
OUT_DIR/{kind}_{group}_{version}.json with kind in lower case and, for the
core group, the version as the group (kubeconform's {{ .Group }} is the
first part of apiVersion). Each file holds its kind's schema and, under
"definitions", every definition it reaches, so references resolve inside the
file. Strict: objects with known properties refuse unknown ones (as the API
server's field validation does), unless marked x-kubernetes-preserve-unknown-fields.
"""

import json
import os
import sys

PREFIX = "#/definitions/"
# Types the API server accepts in more than one JSON form.
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"


def convert(schema):
    """A copy of an OpenAPI v2 schema as JSON schema (draft 4 subset kubeconform reads)."""
    if isinstance(schema, list):
        return [convert(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "$ref":
            out[key] = value
        elif key in ("properties", "definitions", "patternProperties"):
            out[key] = {name: convert(sub) for name, sub in value.items()}
        else:
            out[key] = convert(value)
    if out.get("format") == "int-or-string" or out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["oneOf"] = [{"type": "string"}, {"type": "integer"}]
    preserve = out.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


def references(schema, found):
    """Adds the definition names `schema` refers to (not transitively) to `found`."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith(PREFIX):
            found.add(ref[len(PREFIX):])
        for value in schema.values():
            references(value, found)
    elif isinstance(schema, list):
        for value in schema:
            references(value, found)


def closure(definitions, root):
    """Every definition reachable from definition `root`."""
    seen, todo = set(), [root]
    while todo:
        name = todo.pop()
        if name in seen or name not in definitions:
            continue
        seen.add(name)
        refs = set()
        references(definitions[name], refs)
        todo.extend(refs - seen)
    return seen


def kinds(path):
    """(group or version, version, kind) of each document of a YAML stream."""
    found, api_version, kind = set(), None, None
    with open(path) as f:
        for line in list(f) + ["---"]:
            if line.startswith("---"):
                if api_version and kind:
                    group, _, version = api_version.rpartition("/")
                    found.add((group or version, version, kind))
                api_version = kind = None
            elif line.startswith("apiVersion:"):
                api_version = line.split(":", 1)[1].strip().strip("'\"")
            elif line.startswith("kind:"):
                kind = line.split(":", 1)[1].strip().strip("'\"")
    return found


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    out_dir = sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    definitions = {name: convert(schema) for name, schema in spec["definitions"].items()}
    if QUANTITY in definitions:
        definitions[QUANTITY] = {"oneOf": [{"type": "string"}, {"type": "number"}]}
    if INT_OR_STRING in definitions:
        definitions[INT_OR_STRING] = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
    written = 0
    for name, schema in definitions.items():
        for gvk in spec["definitions"][name].get("x-kubernetes-group-version-kind", []):
            group = gvk["group"] or gvk["version"]
            path = os.path.join(out_dir, f"{gvk['kind'].lower()}_{group}_{gvk['version']}.json")
            standalone = dict(schema)
            standalone["definitions"] = {ref: definitions[ref] for ref in sorted(closure(definitions, name))}
            with open(path, "w") as f:
                json.dump(standalone, f)
            written += 1
    if written == 0:
        sys.exit(f"schemas.py: no kind in {sys.argv[1]}")
    print(f"schemas.py: {written} schemas in {out_dir}", file=sys.stderr)
    missing = sorted({
        f"{group}/{version} {kind}"
        for manifest in sys.argv[3:]
        for group, version, kind in kinds(manifest)
        if not os.path.exists(os.path.join(out_dir, f"{kind.lower()}_{group}_{version}.json"))
    })
    if missing:
        print(f"schemas.py: the server publishes no schema for {', '.join(missing)}", file=sys.stderr)
        sys.exit(3)


if __name__ == "__main__":
    main()
