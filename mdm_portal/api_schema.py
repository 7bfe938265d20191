"""The OpenAPI schema's shared parts (drf-spectacular): the token security scheme, and the
error responses every operation can give, in the one JSON shape of `mdm_portal.api`."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "what went wrong, naming the key at fault"},
        "detail": {"description": "more about it (per-key messages for a 400), or null"},
    },
    "required": ["error"],
}

ERRORS = {
    "400": "Invalid input: the message names the key that is wrong",
    "401": "No token, or a bad or revoked one (`WWW-Authenticate: Token`)",
    "403": "The user's role does not allow it",
    "404": "No such object",
    "409": "The request conflicts with the current state",
    "413": "The request body is too large",
    "415": "The body is not of a media type the endpoint reads",
}
READ_ERRORS = ("400", "401", "403", "404")


class TokenScheme(OpenApiAuthenticationExtension):
    target_class = "mdm_portal.api_tokens.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <key>`: create one with `manage.py mdm_apitoken create "
            "--user U` or at /api-tokens/. The token acts with its user's role.",
        }


class SessionScheme(OpenApiAuthenticationExtension):
    target_class = "mdm_portal.api_tokens.ApiSessionAuthentication"
    name = "cookieAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}


def add_error_responses(result, generator, request, public):
    """Postprocessing hook: the Error component, and its responses on every operation."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    reference = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path in result.get("paths", {}).values():
        for method, operation in path.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            codes = READ_ERRORS if method == "get" else tuple(ERRORS)
            for code in codes:
                responses.setdefault(code, {"description": ERRORS[code], "content": reference})
    return result
