"""A declaration as people see it: what a device gets, with the text under secret keys masked
(mdm_portal.masking's one rule), for the pages, `mdm_declaration show` and viewers in the API.

Apple keeps secrets out of declarations (credentials are assets, whose data the portal
encrypts and never shows), but a few keys still carry one: a beta program's enrollment
`Token`, the organization's `Proof.IdentityToken`. Keys naming assets (…AssetReference,
…AssetReferences) hold other declarations' identifiers, not secrets, so they stay readable."""

from mdm_portal.masking import MASKED, is_secret_key

from .models import Declaration
from .protocol import as_sent


def _names_assets(key: str) -> bool:
    return "AssetReference" in key


def shown_payload(value):
    if isinstance(value, dict):
        return {
            key: MASKED
            if is_secret_key(key) and not _names_assets(key) and isinstance(item, str) and item
            else shown_payload(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [shown_payload(item) for item in value]
    return value


def as_shown(declaration: Declaration) -> dict:
    sent = as_sent(declaration)
    return {**sent, "Payload": shown_payload(sent["Payload"])}
