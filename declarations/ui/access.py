"""Which role a declaration needs, by its Type and where its data comes from.

Operators manage declarations as they manage the profile library. Administrators alone touch
credentials: the ACME and SCEP credential assets (the portal makes a per-device identity from
them) and credential data uploaded for the portal to serve (a user name and password, a
PKCS#12 identity). The pages check it on the server and hide what a role may not use.
"""

from mdm_portal.roles import ADMIN, OPERATOR, has_role

from ..assets import CREDENTIAL_TYPES, UPLOADED_CREDENTIALS
from ..models import Declaration

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
