"""Validates recorded API responses against docs/openapi.yaml with the `jsonschema` package
(JSON Schema 2020-12, the dialect of OpenAPI 3.1).

Usage: python openapi_check.py <openapi.yaml> <samples.json>

Each sample is {"method", "route", "status", "headers", "body"}. For each one the document must
declare that status for that operation (or the shared 405 answer), the content type must be one it
declares, the body must validate against its schema, and every required response header must be
present and valid. Finally every documented status of every operation must have been sampled,
except 429, which only API Gateway and AWS WAF answer, and responses marked
`x-answered-before-the-functions` (API Gateway's IAM refusal). Exits non-zero with one line per
failure.
"""

import json
import sys

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOC_URI = "urn:flash-sale:openapi"


def resolve(doc, node):
    while isinstance(node, dict) and "$ref" in node and len(node) == 1:
        node = pointer(doc, node["$ref"])
    return node


def pointer(doc, ref):
    assert ref.startswith("#/"), ref
    node = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def main():
    doc = yaml.safe_load(open(sys.argv[1], encoding="utf-8"))
    samples = json.load(open(sys.argv[2], encoding="utf-8"))
    registry = Registry().with_resource(DOC_URI, Resource(contents=doc, specification=DRAFT202012))

    def validate(instance, schema_ref_path, what):
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": DOC_URI + "#" + schema_ref_path}
        validator = jsonschema.Draft202012Validator(schema, registry=registry)
        return [f"{what}: {e.message} at {list(e.absolute_path)}" for e in validator.iter_errors(instance)]

    failures = []
    seen = set()
    for s in samples:
        path_item = doc["paths"].get(s["route"])
        op = (path_item or {}).get(s["method"].lower())
        what = f'{s["method"]} {s["route"]} {s["status"]}'
        status = str(s["status"])
        if path_item is None or (op is None and status != "405"):
            failures.append(f"{what}: not in the document")
            continue
        if op is not None and status in op["responses"]:
            base = f'/paths/{s["route"].replace("/", "~1")}/{s["method"].lower()}/responses/{status}'
            raw = op["responses"][status]
        elif status == "405":
            base, raw = "/components/responses/MethodNotAllowed", doc["components"]["responses"]["MethodNotAllowed"]
        else:
            failures.append(f"{what}: status not documented for this operation")
            continue
        seen.add((s["method"].upper(), s["route"], status))
        if "$ref" in raw:
            base = raw["$ref"][1:]
        response = resolve(doc, raw)
        headers = {k.lower(): v for k, v in s["headers"].items()}
        content_type = headers.get("content-type", "").split(";")[0].strip()
        content = response.get("content", {})
        if content_type not in content:
            failures.append(f"{what}: content type {content_type!r} not among {sorted(content)}")
            continue
        try:
            body = json.loads(s["body"])
        except ValueError as e:
            failures.append(f"{what}: body is not JSON: {e}")
            continue
        media = content_type.replace("/", "~1")
        failures += validate(body, f"{base}/content/{media}/schema", what)
        for name, header in response.get("headers", {}).items():
            header = resolve(doc, header)
            value = headers.get(name.lower())
            if value is None:
                if header.get("required"):
                    failures.append(f"{what}: required header {name} missing")
                continue
            schema = resolve(doc, header.get("schema", {}))
            instance = int(value) if schema.get("type") == "integer" and value.isdigit() else value
            errors = jsonschema.Draft202012Validator(
                {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}, registry=registry
            ).iter_errors(instance)
            failures += [f"{what}: header {name}: {e.message}" for e in errors]

    for route, item in doc["paths"].items():
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            for status, response in op["responses"].items():
                gateway_only = status == "429" or resolve(doc, response).get("x-answered-before-the-functions")
                if not gateway_only and (method.upper(), route, status) not in seen:
                    failures.append(f"{method.upper()} {route} {status}: documented but never answered by the handlers")

    for f in failures:
        print(f)
    print(f"{len(samples)} responses checked, {len(failures)} failures")
    sys.exit(1 if failures else 0)


main()
