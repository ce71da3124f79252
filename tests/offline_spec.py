"""Mistral's OpenAPI spec (vendored in tests/spec/) as pytest fixtures: `spec`, `check(body, path, method)`, `check_error(response, ...)`.

Imported by the offline-server tests: `from offline_spec import check_fixture, ...  # noqa: F401`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

SPEC_URI = "urn:mistral-openapi"
# Mistral's official OpenAPI 3.1 description, vendored in tests/spec/ with its source and
# date; MISTRAL_OPENAPI_SPEC points at another copy.
SPEC = Path(os.environ.get("MISTRAL_OPENAPI_SPEC") or Path(__file__).parent / "spec" / "mistral-openapi.yaml")


@pytest.fixture(scope="module", name="spec")
def spec_fixture():
    if not SPEC.is_file():
        pytest.fail(f"the OpenAPI spec is missing: {SPEC} (tests/spec/ holds it; see its README)")
    with open(SPEC, encoding="utf-8") as handle:
        loaded = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    # Spec quirk: ChatCompletionResponse (and FIMCompletionResponse through it) requires a
    # `data` property that neither the API's examples nor the SDK have. Drop just that.
    for part in loaded["components"]["schemas"]["ChatCompletionResponse"]["allOf"]:
        if "data" in part.get("required", []):
            part["required"] = [r for r in part["required"] if r != "data"]
    return loaded


@pytest.fixture(scope="module", name="check")
def check_fixture(spec):
    """check(body, path, method, status=200, media="application/json") validates against the spec."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    registry = Registry().with_resource(SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT202012))

    def pointer(*parts):
        return SPEC_URI + "#/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)

    def validate(body, path, method, status=200, media="application/json"):
        ref = pointer("paths", path, method, "responses", str(status), "content", media, "schema")
        validator = Draft202012Validator({"$ref": ref}, registry=registry,
                                         format_checker=Draft202012Validator.FORMAT_CHECKER)
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
        assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])

    return validate


# The API's error object (MISTRAL_FACTS.md); the spec documents no schema for it, only
# HTTPValidationError for 422 and ObservabilityError for the observability API.
ERROR_OBJECT = {"type": "object", "additionalProperties": False,
                "required": ["object", "message", "type", "param", "code"],
                "properties": {"object": {"const": "error"}, "message": {"type": "string", "minLength": 1},
                               "type": {"type": "string"}, "param": {"type": ["string", "null"]},
                               "code": {"type": ["string", "null"]}}}


@pytest.fixture(scope="module", name="check_error")
def check_error_fixture(spec, check):
    """Validate an error body against the spec's schema for that status, else the API's error object."""
    from jsonschema import Draft202012Validator

    def validate(response, path, method):
        documented = spec["paths"].get(path, {}).get(method, {}).get("responses", {}).get(str(response.status_code))
        if documented and "content" in documented:
            check(response.json(), path, method, status=response.status_code)
            return "spec"
        if response.status_code == 422:
            check_422(response.json())
            return "HTTPValidationError"
        Draft202012Validator(ERROR_OBJECT).validate(response.json())
        return "error object"

    def check_422(body):
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT202012

        registry = Registry().with_resource(SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT202012))
        validator = Draft202012Validator({"$ref": SPEC_URI + "#/components/schemas/HTTPValidationError"},
                                         registry=registry)
        validator.validate(body)
        assert body["detail"], "a 422 names what is wrong"

    return validate





