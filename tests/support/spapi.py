"""Amazon's official SP-API models (vendored under tests/reference/amazon-sp-api), as a check on
every request the sandbox receives and every answer it gives in Amazon's place.

The sandbox fixture of the integration tests installs a `Conformance` as the sandbox's observer:
each Amazon call is matched to its operation in the models (method and path template), its query
parameters and JSON body are checked against the operation's declared parameters, and the answer
against the schema the operation declares for that HTTP status. A test ends by asserting that
nothing was found, so an adapter and the sandbox can never agree on a shape Amazon does not have.
Requests to the pre-signed upload and download URLs (S3's, not SP-API's) and to Login with Amazon
are not in the models and are not checked.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from jsonschema import Draft4Validator

MODELS = Path(__file__).resolve().parents[1] / "reference" / "amazon-sp-api"
MODEL_FILES = ("listingsItems_2021-08-01.json", "feeds_2021-06-30.json", "orders_2026-01-01.json")
PREFIX = "/amazon"


def load(name: str) -> dict:
    return json.loads((MODELS / name).read_text(encoding="utf-8"))


@dataclass
class Operation:
    method: str
    template: str
    pattern: re.Pattern
    model: dict
    spec: dict

    @property
    def name(self) -> str:
        return self.spec.get("operationId", f"{self.method} {self.template}")

    def validator(self, schema: dict) -> Draft4Validator:
        return Draft4Validator({**schema, "definitions": self.model["definitions"]})


def operations() -> list[Operation]:
    found = []
    for name in MODEL_FILES:
        model = load(name)
        for template, methods in model["paths"].items():
            regex = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
            for method, spec in methods.items():
                if method.lower() in ("get", "put", "post", "patch", "delete"):
                    found.append(Operation(method.upper(), template, re.compile(regex), model, spec))
    # The longest template first: /items/{sellerId}/{sku} before /items/{sellerId}.
    return sorted(found, key=lambda op: -len(op.template))


@dataclass
class Conformance:
    ops: list[Operation] = field(default_factory=operations)
    problems: list[str] = field(default_factory=list)
    checked: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, method: str, path: str, query: dict[str, list[str]], body: bytes, status: int,
                 answer: bytes, content_type: str | None) -> None:
        if not path.startswith(PREFIX + "/"):
            return
        path = path[len(PREFIX):]
        if path.startswith(("/_", "/auth/")):
            return  # the sandbox's own steering, S3's pre-signed URLs, Login with Amazon
        op = next((o for o in self.ops if o.method == method and o.pattern.match(path)), None)
        found = [] if op else [f"{method} {path}: no such operation in Amazon's models"]
        if op:
            found += [f"{op.name} request: {p}" for p in self._request(op, query, body)]
            found += [f"{op.name} answer {status}: {p}" for p in self._answer(op, status, answer, content_type)]
        with self.lock:
            self.checked += 1
            self.problems.extend(found)

    def _request(self, op: Operation, query: dict[str, list[str]], body: bytes) -> list[str]:
        problems = []
        declared = {p["name"]: p for p in op.spec.get("parameters", []) if p.get("in") == "query"}
        for name in query:
            if name not in declared:
                problems.append(f"query parameter {name!r} is not declared")
        for name, param in declared.items():
            values = query.get(name)
            if not values:
                if param.get("required"):
                    problems.append(f"required query parameter {name!r} is missing")
                continue
            problems += _parameter(name, param, values)
        body_param = next((p for p in op.spec.get("parameters", []) if p.get("in") == "body"), None)
        if body_param is not None:
            try:
                instance = json.loads(body) if body else None
            except ValueError:
                return problems + ["the body is not JSON"]
            if instance is None and body_param.get("required"):
                problems.append("the body is missing")
            elif instance is not None:
                problems += [_error(e) for e in op.validator(body_param["schema"]).iter_errors(instance)]
        return problems

    def _answer(self, op: Operation, status: int, answer: bytes, content_type: str | None) -> list[str]:
        declared = op.spec.get("responses", {}).get(str(status))
        if declared is None:
            return [f"status {status} is not one the operation declares"]
        schema = declared.get("schema")
        if schema is None:
            return []
        try:
            instance = json.loads(answer)
        except ValueError:
            return [f"the answer is not JSON ({content_type})"]
        return [_error(e) for e in op.validator(schema).iter_errors(instance)]


def _parameter(name: str, param: dict, values: list[str]) -> list[str]:
    if param.get("type") == "array":
        items = [v for value in values for v in value.split(",")] if param.get("collectionFormat", "csv") == "csv" else values
        problems = []
        if "maxItems" in param and len(items) > param["maxItems"]:
            problems.append(f"{name} has {len(items)} values, at most {param['maxItems']}")
        allowed = param.get("items", {}).get("enum")
        if allowed:
            problems += [f"{name} value {v!r} is not one of {allowed}" for v in items if v not in allowed]
        return problems
    if len(values) > 1:
        return [f"{name} is given {len(values)} times"]
    value = values[0]
    if param.get("enum") and value not in param["enum"]:
        return [f"{name} value {value!r} is not one of {param['enum']}"]
    if param.get("type") == "integer":
        try:
            number = int(value)
        except ValueError:
            return [f"{name} value {value!r} is not an integer"]
        if "minimum" in param and number < param["minimum"] or "maximum" in param and number > param["maximum"]:
            return [f"{name} value {number} is outside {param.get('minimum')}..{param.get('maximum')}"]
    return []


def _error(error) -> str:
    return f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
