"""Which role a declaration needs, by its Type and where its data comes from, and the checks
the declaration pages share (the role, the declaration named in the URL, what the portal can
serve).

Operators manage declarations as they manage the profile library. Administrators alone touch
credentials: the ACME and SCEP credential assets (the portal makes a per-device identity from
them) and credential data uploaded for the portal to serve (a user name and password, a
PKCS#12 identity). The pages check it on the server and hide what a role may not use.
"""

from django.core.exceptions import PermissionDenied
from django.http import Http404

from mdm_portal.roles import ADMIN, OPERATOR, has_role

from ..assets import CREDENTIAL_TYPES, UPLOADED_CREDENTIALS
from ..models import Declaration
from ..schema import TYPES

ADMIN_TYPES = frozenset(CREDENTIAL_TYPES.values())


def role_for(declaration_type: str, *, served: bool = False) -> str:
    """The role that may create, change or delete a declaration of this Type (`served`: its
    data uploaded to the portal)."""
    if declaration_type in ADMIN_TYPES:
        return ADMIN
    if served and declaration_type in UPLOADED_CREDENTIALS:
        return ADMIN
    return OPERATOR


def role_for_declaration(declaration: Declaration) -> str:
    return role_for(declaration.type, served=hasattr(declaration, "served"))


def may_change(user, declaration: Declaration) -> bool:
    return has_role(user, role_for_declaration(declaration))


def require(request, role: str, what: str) -> None:
    """PermissionDenied (a 403) unless the request's user has `role`."""
    if not has_role(request.user, role):
        raise PermissionDenied(f"{what} needs the {role} role")


def declaration_or_404(identifier: str) -> Declaration:
    found = Declaration.objects.select_related("served").filter(identifier=identifier).first()
    if found is None:
        raise Http404("no declaration with this Identifier")
    return found


def servable(declaration_type: str) -> bool:
    """Whether the portal can serve the data of an asset of this Type (it has a Reference)."""
    found = TYPES.get(declaration_type)
    return (
        found is not None
        and found.kind == "asset"
        and any(raw["name"] == "Reference" for raw in found.fields)
    )


def credential_source(declaration_type: str) -> str:
    """The source (acme, scep) of a credential asset the portal makes per device; else empty."""
    return next((s for s, t in CREDENTIAL_TYPES.items() if t == declaration_type), "")
