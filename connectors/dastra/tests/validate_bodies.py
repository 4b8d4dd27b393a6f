"""Validates request bodies produced by the Rust client against the component schemas of Dastra's
OpenAPI 3.0 document (used by tests/openapi_bodies.rs).

usage: validate_bodies.py OPENAPI.json CASES.json  -> prints a JSON list of {name, errors[]}

Each case: {"name", "schema": "<component name>" | "inline": {...schema...}, "body": ...,
            "extensions": ["ref", ...]   # post-2022 fields documented in docs/dastra-api.md, allowed on the top object
            "ignore_required": bool}
Strictness beyond plain validation, because real Dastra silently ignores what it does not know:
- every object schema with properties rejects unknown properties (additionalProperties: false),
- a property marked readOnly must not be sent,
- OpenAPI 3.0 `nullable: true` is translated to JSON-Schema null types.
"""
import copy
import json
import re
import sys
import uuid

import jsonschema

FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("uuid", raises=ValueError)
def _uuid(value):
    if isinstance(value, str):
        uuid.UUID(value)
    return True


@FORMATS.checks("int32")
def _int32(value):
    return not isinstance(value, int) or -(2**31) <= value < 2**31


# ISO 8601 as ASP.NET reads it: offset optional (real Dastra payloads have none), up to 7 decimals.
DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?(Z|[+-]\d{2}:\d{2})?$")


@FORMATS.checks("date-time")
def _date_time(value):
    return not isinstance(value, str) or bool(DATE_TIME.match(value))


def convert(node):
    """OpenAPI 3.0 schema -> JSON Schema (draft 7) for the keywords the document uses."""
    if isinstance(node, list):
        return [convert(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: convert(v) for k, v in node.items() if k not in ("nullable", "example", "readOnly", "writeOnly")}
    if node.get("nullable"):
        t = out.get("type")
        if isinstance(t, str):
            out["type"] = [t, "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = out["enum"] + [None]
        if "$ref" in out:
            ref = out.pop("$ref")
            out["anyOf"] = [{"$ref": ref}, {"type": "null"}]
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def resolve(schemas, node):
    while isinstance(node, dict) and "$ref" in node:
        node = schemas[node["$ref"].split("/")[-1]]
    return node


def read_only_errors(schemas, schema, body, path):
    """Reports readOnly properties present in the body (the validator ignores readOnly)."""
    errs = []
    schema = resolve(schemas, schema)
    if not isinstance(schema, dict):
        return errs
    if isinstance(body, dict):
        props = schema.get("properties", {})
        for k, v in body.items():
            p = resolve(schemas, props.get(k)) if k in props else None
            if isinstance(props.get(k), dict) and props[k].get("readOnly"):
                errs.append(f"{path}/{k}: readOnly property sent")
            if p is not None:
                errs.extend(read_only_errors(schemas, p, v, f"{path}/{k}"))
    elif isinstance(body, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(body):
            errs.extend(read_only_errors(schemas, schema["items"], v, f"{path}/{i}"))
    return errs


def main():
    doc = json.load(open(sys.argv[1], encoding="utf-8"))
    cases = json.load(open(sys.argv[2], encoding="utf-8"))
    raw = doc["components"]["schemas"]
    converted = {name: convert(s) for name, s in raw.items()}
    results = []
    for case in cases:
        schemas = copy.deepcopy(converted)
        if "schema" in case:
            top = schemas[case["schema"]]
            raw_top = raw[case["schema"]]
        else:
            top = convert(case["inline"])
            raw_top = case["inline"]
        for ext in case.get("extensions", []):
            top.setdefault("properties", {})[ext] = {}
        if case.get("ignore_required"):
            top.pop("required", None)
        root = dict(top)
        root["components"] = {"schemas": schemas}
        validator = jsonschema.Draft7Validator(root, format_checker=FORMATS)
        errors = [f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in validator.iter_errors(case["body"])]
        errors += read_only_errors(raw, raw_top, case["body"], "")
        results.append({"name": case["name"], "errors": errors})
    json.dump(results, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
