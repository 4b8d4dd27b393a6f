"""Validates JSON documents against definitions of a JSON Schema (draft 2020-12) with PyPI
jsonschema, formats checked (uuid).
stdin: {"schema": <schema with $defs>, "items": [{"what": str, "def": <name in $defs>, "instance": ...}]}
stdout: {"checked": n, "errors": ["<what>: <path>: <message>"]}"""
import json
import sys

from jsonschema import Draft202012Validator

req = json.load(sys.stdin)
doc = req["schema"]
Draft202012Validator.check_schema(doc)
errors = []
validators = {}
for item in req["items"]:
    name = item["def"]
    if name not in doc["$defs"]:
        errors.append(f"{item['what']}: no definition {name!r}")
        continue
    if name not in validators:
        schema = dict(doc)
        schema["$ref"] = f"#/$defs/{name}"
        validators[name] = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    for e in sorted(validators[name].iter_errors(item["instance"]), key=lambda e: list(e.absolute_path)):
        path = "/".join(str(p) for p in e.absolute_path)
        errors.append(f"{item['what']}: /{path}: {e.message}")
print(json.dumps({"checked": len(req["items"]), "errors": errors}))
