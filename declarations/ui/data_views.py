"""The data the portal serves for an asset declaration, from its own pages:
/declarations/new/served-data/?type=<Type> (a new asset) and /declarations/<identifier>/data/
(new data, or new credential options). A file and its media type go to
declarations.assets.serve_data; the options of an ACME or SCEP credential the portal makes
per device to serve_credential. Neither page ever shows served content: its size and SHA-256.
"""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render

from enrollment.ui.common import acting
from mdm_portal.roles import OPERATOR, role_required

from ..assets import UPLOADED_CREDENTIALS, serve_credential, serve_data
from ..models import Declaration, ServedAsset
from ..schema import TYPES, DeclarationError
from .access import credential_source, declaration_or_404, require, role_for, servable
from .forms import DESCRIPTION, IDENTIFIER, CredentialForm, ServeDataForm
from .tables import declaration_url, type_title


@role_required(OPERATOR)
def declaration_data(request, identifier: str | None = None):
    """Serve an asset's data from the portal: a file and its media type, or, for the ACME and
    SCEP credential assets, the options of the credential made per device. New (`type` in the
    query) or for an asset whose data the portal serves already."""
    declaration = declaration_or_404(identifier) if identifier is not None else None
    if declaration is not None:
        if not hasattr(declaration, "served"):
            raise Http404(f"{identifier}'s data is not served by the portal")
        name = declaration.type
    else:
        name = request.GET.get("type", "").strip()
        if not servable(name):
            raise Http404(f"{name!r} is not an asset Type whose data the portal can serve")
    require(request, role_for(name, served=True), f"serving {name} data")
    source = credential_source(name)
    served = declaration.served if declaration is not None else None
    post = request.method == "POST"
    if source:
        form = CredentialForm(
            request.POST if post else None,
            source=source,
            options=served.options if served is not None else None,
            new=declaration is None,
        )
    else:
        form = ServeDataForm(
            request.POST if post else None,
            request.FILES if post else None,
            declaration_type=name,
            new=declaration is None,
        )
    if declaration is not None and not post:
        form.initial[DESCRIPTION] = declaration.description
        if served.content_type and not source:
            form.initial["content_type"] = served.content_type
    if post and form.is_valid():
        data = form.cleaned_data
        target = identifier if declaration is not None else data[IDENTIFIER].strip()
        if declaration is None and Declaration.objects.filter(identifier=target).exists():
            form.add_error(IDENTIFIER, f"a declaration with Identifier {target} exists")
            return _data_page(request, form, declaration, name, source, served)
        try:
            saved = _serve(request, form, name, source, target, data)
        except DeclarationError as exc:
            if source:
                form.add_declaration_error(exc)
            else:
                form.add_error(
                    IDENTIFIER if exc.key == IDENTIFIER and declaration is None else "file",
                    str(exc),
                )
        else:
            messages.success(request, _served_message(saved))
            return redirect(declaration_url(saved.identifier))
    return _data_page(request, form, declaration, name, source, served)


def _data_page(request, form, declaration, name: str, source: str, served):
    context = {
        "title": f"Data of {declaration.identifier}"
        if declaration
        else f"New {type_title(name)}, served by the portal",
        "form": form,
        "declaration": declaration,
        "declaration_type": TYPES[name],
        "served": served,
        "source": source,
    }
    status = 400 if request.method == "POST" else 200
    return render(request, "declarations/data.html", context, status=status)


def _serve(request, form, name: str, source: str, identifier: str, data: dict) -> Declaration:
    if source:
        return serve_credential(
            identifier, source, form.options(), description=data[DESCRIPTION], **acting(request)
        )
    return serve_data(
        identifier,
        data["file"].read(),
        data["content_type"].strip(),
        declaration_type=name,
        description=data[DESCRIPTION],
        **acting(request),
    )


def _served_message(declaration: Declaration) -> str:
    served = ServedAsset.objects.get(declaration=declaration)
    if served.source == ServedAsset.Source.DATA:
        what = f"{served.size} bytes of {served.content_type} (SHA-256 {served.sha256[:16]}…)"
        if declaration.type in UPLOADED_CREDENTIALS:
            what = f"a {UPLOADED_CREDENTIALS[declaration.type]} document, {served.size} bytes"
    else:
        article = "an" if served.source == ServedAsset.Source.ACME else "a"
        what = f"{article} {served.source.upper()} credential made for each device that asks"
    token = declaration.server_token[:10]
    return f"{declaration.identifier}: the portal serves {what}. ServerToken {token}…"
