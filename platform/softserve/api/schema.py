"""OpenAPI description of Softserve's API-key authentication."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "softserve.tenancy.auth.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "ss_<prefix>_<secret>"}


# Every API answer other than success has the one error shape; these are the statuses any operation may
# give (input, credentials, role or scope, another team's or a missing object, conflicts, size, media
# type, rate limit, outage), and the serving pool's own on predictions.
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["status", "code", "message", "fields"],
            "properties": {
                "status": {"type": "integer"},
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
                "gate": {
                    "type": "object",
                    "description": "409 `gate_failed` only: the failing verdict (version, against, metric, "
                    "candidate, current, regression, mcnemar {b, c, p_value}, reasons); `gates` lists all",
                },
            },
        }
    },
}
ERRORS = {
    "400": "Invalid input: `fields` names each problem",
    "401": "No valid credentials",
    "403": "The role or the key's scope does not allow this",
    "404": "No such object in the caller's tenant",
    "405": "The endpoint does not take this method",
    "409": "Conflict with the object's state",
    "413": "Over a size limit",
    "415": "Unsupported media type",
    "429": "Over the tenant's rate or job quota (Retry-After)",
    "503": "A service is briefly unavailable (Retry-After)",
}
SERVING_ERRORS = {"502": "The serving pool could not answer", "504": "No answer within the deadline"}


def add_error_responses(result: dict, generator, request, public) -> dict:
    """drf-spectacular postprocessing hook: the error responses on every operation."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in result.get("paths", {}).items():
        errors = {**ERRORS, **SERVING_ERRORS} if ("predict" in path or "completions" in path) else ERRORS
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for code, description in errors.items():
                responses.setdefault(code, {"description": description, "content": body})
    return result
