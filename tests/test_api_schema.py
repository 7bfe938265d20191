"""The OpenAPI schema (/api/schema/) is valid and the docs page is served without a CDN; and
schemathesis, driven by that schema, finds no server error and no response that breaks it,
on every operation, as the admin's token (a bounded number of examples each)."""

import plistlib
import re

import pytest
from cryptography.hazmat.primitives import serialization
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certs.models import ScepRequest
from commands.catalog import DEFINITIONS
from commands.models import Status
from commands.queue import enqueue
from declarations.assets import serve_data
from declarations.models import Kind
from declarations.sets import add_declarations, assign, create_set
from declarations.states import STATES
from declarations.store import save_declaration
from devices.models import Device, DeviceGroup
from enrollment.dep_profiles import save_profile
from enrollment.dep_sync import sync_server
from enrollment.enrollments import EnrollmentSpec, create_enrollment
from enrollment.library import upload_profile
from mdm_portal.models import AuditEntry
from tests.api_support import managed_devices, token_client
from tests.declarative_support import ORGANIZATION
from tests.dep_support import make_server as make_dep_server
from tests.simulator import make_csr, make_key
from tests.test_dep_profiles import tls_root  # noqa: F401 - a fixture: the server's TLS chain
from tests.test_profile_library import profile
from tests.ui_support import make_user
from webhooks.registry import create_webhook

pytestmark = pytest.mark.django_db

EXAMPLES_PER_OPERATION = 20


def test_the_schema_documents_every_endpoint_with_enums(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json() if response["Content-Type"].endswith("json") else None
    if schema is None:
        import yaml

        schema = yaml.safe_load(response.content)
    paths = schema["paths"]
    for path in (
        "/api/v1/devices/", "/api/v1/devices/{udid}/", "/api/v1/devices/{udid}/commands/",
        "/api/v1/devices/{udid}/pushes/", "/api/v1/commands/", "/api/v1/commands/{uuid}/",
        "/api/v1/commands/{uuid}/cancel/", "/api/v1/profiles/", "/api/v1/profiles/{id}/assign/",
        "/api/v1/enrollments/", "/api/v1/enrollments/{id}/deactivate/", "/api/v1/groups/",
        "/api/v1/certificates/", "/api/v1/certificates/push/", "/api/v1/certificates/issued/",
        "/api/v1/certificates/issued/{serial}/", "/api/v1/scep-requests/",
        "/api/v1/push/", "/api/v1/audit/", "/api/v1/webhooks/",
        "/api/v1/webhooks/{id}/deliveries/", "/api/v1/dep/servers/", "/api/v1/dep/servers/{id}/",
        "/api/v1/dep/servers/{id}/certificate/", "/api/v1/dep/servers/{id}/token/",
        "/api/v1/dep/servers/{id}/sync/", "/api/v1/dep/servers/{id}/disown/",
        "/api/v1/dep/devices/", "/api/v1/dep/devices/{serial}/", "/api/v1/dep/profiles/",
        "/api/v1/dep/profiles/{id}/", "/api/v1/dep/profiles/{id}/assign/",
        "/api/v1/declarations/", "/api/v1/declarations/{identifier}/",
        "/api/v1/declarations/{identifier}/states/", "/api/v1/declarations/{identifier}/data/",
        "/api/v1/declarations/{identifier}/credential/", "/api/v1/declaration-sets/",
        "/api/v1/declaration-sets/{id}/", "/api/v1/declaration-sets/{id}/assign/",
        "/api/v1/declaration-sets/{id}/unassign/",
        "/api/v1/declaration-sets/{id}/add-declarations/",
        "/api/v1/declaration-sets/{id}/remove-declarations/",
        "/api/v1/devices/{udid}/declarations/",
    ):  # fmt: skip
        assert path in paths, path
    components = schema["components"]["schemas"]
    request_type = components["CommandCreateRequest"]["properties"]["request_type"]
    assert request_type["allOf"][0]["$ref"] == "#/components/schemas/RequestTypeEnum"
    assert set(components["RequestTypeEnum"]["enum"]) == set(DEFINITIONS)
    assert set(components["CommandStatus"]["enum"]) == set(Status.values)
    assert set(components["DeviceState"]["enum"]) == set(Device.State.values)
    assert schema["components"]["securitySchemes"]["tokenAuth"]["name"] == "Authorization"
    create = paths["/api/v1/commands/"]["post"]["responses"]
    assert {"201", "400", "401", "403", "409", "413"} <= set(create)
    assign = paths["/api/v1/dep/profiles/{id}/assign/"]["post"]["responses"]
    assert {"200", "400", "403", "502"} <= set(assign)  # 502: Apple refused or was not reached
    token = paths["/api/v1/dep/servers/{id}/token/"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(token)
    certificate = paths["/api/v1/dep/servers/{id}/certificate/"]["get"]["responses"]["200"]
    assert "application/x-pem-file" in certificate["content"]
    data = paths["/api/v1/declarations/{identifier}/data/"]["post"]
    assert {"multipart/form-data", "application/json"} <= set(data["requestBody"]["content"])
    assert {"200", "201", "400", "403", "413"} <= set(data["responses"])
    assert {"200", "409"} <= set(paths["/api/v1/declarations/{identifier}/"]["delete"]["responses"])
    assert set(components["DeclarationKind"]["enum"]) == set(Kind.values)
    assert set(components["DeclarativeState"]["enum"]) == set(STATES)


def test_the_schema_is_generated_without_a_warning_and_validates(tmp_path):
    """drf-spectacular warns when it must guess (a path parameter's type, a component's
    name): every view says what it takes and answers."""
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml")
    )


def test_the_docs_page_serves_its_assets_itself(client):
    page = client.get("/api/docs/")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.content.decode())
    assert assets and all(not a.startswith(("http:", "https:", "//")) for a in assets), assets
    assert any("swagger-ui" in a for a in assets)


@pytest.fixture
def keep_connection():
    """Called as a plain WSGI app, Django closes the connection after each request, and with
    it the test's transaction: do as Django's own test client does and keep it open."""
    signals = (request_started, request_finished)
    for signal in signals:
        signal.disconnect(close_old_connections)
    yield
    for signal in signals:
        signal.connect(close_old_connections)


@pytest.fixture
def fleet(ca, settings, keep_connection, dep, request) -> dict[str, object]:
    """Something for every endpoint to find; returns the path parameters that name it."""
    settings.MDM_APNS_URL = "https://127.0.0.1:9"  # never reached: no push certificate
    group = DeviceGroup.objects.create(name="Lab")
    managed_devices(3, group=group)
    Device.objects.filter(udid="D-00002").update(token_invalid_at=timezone.now())
    command = enqueue(Device.objects.filter(udid="D-00000"), "ProfileList", queued_by="tests")
    profile_ = upload_profile(plistlib.dumps(profile()), uploaded_by="tests")
    enrollment = create_enrollment(EnrollmentSpec("Staff"), by="tests")
    webhook, _ = create_webhook("http://127.0.0.1:9/hook", actor="tests")  # never delivered
    csr = make_csr(make_key(), "device").public_bytes(serialization.Encoding.DER)
    scep = ScepRequest.objects.create(
        transaction_id="T-1", message_type="PKCSReq", subject="CN=device", csr_der=csr,
        signer_certificate_der=b"-",
    )  # fmt: skip
    # Automated Device Enrollment: a server whose token works with a stand-in of Apple's DEP
    # API (never Apple), a device and a profile of it.
    request.getfixturevalue("tls_root")  # a TLS chain for the profile's anchor_certs
    settings.MDM_DEP_URL = dep.url
    dep.add_device("C02SCHEMA01")
    dep_server = make_dep_server(dep)
    sync_server(dep_server, actor="tests")
    dep_profile = save_profile(
        dep_server, name="Staff", enrollment=enrollment, settings={}, actor="tests"
    )
    # Declarative Device Management: declarations (one with served data), a set given to the
    # group.
    declaration, _ = save_declaration(ORGANIZATION, by="tests")
    serve_data("schema-data", b"data", "text/plain", by="tests")
    declaration_set = create_set("Baseline", by="tests")
    add_declarations(declaration_set, [declaration], by="tests")
    assign(declaration_set, groups=[group], by="tests")
    return {
        "/api/v1/declarations/": {"identifier": declaration.identifier},
        "/api/v1/declaration-sets/": {"id": declaration_set.pk},
        "/api/v1/dep/servers/": {"id": dep_server.pk},
        "/api/v1/dep/devices/": {"serial": "C02SCHEMA01"},
        "/api/v1/dep/profiles/": {"id": dep_profile.pk},
        "/api/v1/devices/": {"udid": "D-00000"},
        "/api/v1/commands/": {"uuid": command.uuid},
        "/api/v1/groups/": {"id": group.pk},
        "/api/v1/profiles/": {"id": profile_.pk},
        "/api/v1/enrollments/": {"id": enrollment.pk},
        "/api/v1/webhooks/": {"id": webhook.pk},
        "/api/v1/scep-requests/": {"id": scep.pk},
        "/api/v1/audit/": {"id": AuditEntry.objects.first().pk},
    }


def known(fleet: dict, operation):
    """Half the cases name objects that exist (random path parameters only find 404s)."""

    def fill(pair):
        case, use_known = pair
        if use_known and case.path_parameters:
            for prefix, parameters in fleet.items():
                if operation.path.startswith(prefix):
                    case.path_parameters = {**case.path_parameters, **parameters}
        return case

    return st.tuples(operation.as_strategy(), st.booleans()).map(fill)


def test_schemathesis_finds_no_server_error_and_no_schema_violation(fleet):
    import schemathesis
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
    ]
    key = token_client(make_user("schemathesis", "admin")).key
    headers = {"Authorization": f"Token {key}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    operations = [result.ok() for result in schema.get_all_operations()]
    # Deletes last, so that the other operations find the fleet's objects still there.
    operations.sort(key=lambda operation: operation.method.upper() == "DELETE")
    assert len(operations) >= 40
    failures = []
    answered: dict[str, set[int]] = {}
    for operation in operations:

        @given(case=known(fleet, operation))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case):
            response = case.call_and_validate(headers=headers, checks=checks)
            path = case.operation.path
            answered[path] = answered.get(path, set()) | {response.status_code}

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures)
    # It did call them, and reached their success paths, not only their refusals.
    succeeded = {path for path, codes in answered.items() if codes & {200, 201, 202, 204}}
    assert len(succeeded) >= 20, answered
