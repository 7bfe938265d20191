"""The API tokens page (/api-tokens/, admins): every token with its owner, prefix, dates and
state; create one (its key is shown on this answer only, never again); revoke one after a
confirmation. The work is mdm_portal.api_tokens'; the page only shows and asks."""

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.shortcuts import get_object_or_404, redirect, render

from .api_tokens import TokenError, create_token, revoke_token
from .audit import client_address
from .models import ApiToken
from .roles import ADMIN, role_of, role_required


class TokenForm(forms.Form):
    user = forms.ModelChoiceField(
        queryset=get_user_model().objects.filter(is_active=True).order_by("username"),
        help_text="the token acts as this user, with the user's role",
    )
    name = forms.CharField(max_length=100, help_text="what the token is for, e.g. inventory-sync")


def _page(request, form, key=None, token=None, status=200):
    tokens = ApiToken.objects.select_related("user").order_by("-created_at", "-id")
    rows = [(t, role_of(t.user) or "no role") for t in tokens]
    context = {"title": "API tokens", "form": form, "rows": rows, "key": key, "created": token}
    return render(request, "mdm_portal/api_tokens.html", context, status=status)


@role_required(ADMIN)
def api_tokens(request):
    if request.method != "POST":
        return _page(request, TokenForm())
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _page(request, form, status=400)
    try:
        token, key = create_token(
            form.cleaned_data["user"],
            form.cleaned_data["name"],
            actor=request.user,
            address=client_address(request),
        )
    except TokenError as exc:
        form.add_error(None, str(exc))
        return _page(request, form, status=400)
    return _page(request, TokenForm(), key=key, token=token)


@role_required(ADMIN)
def revoke(request, pk: int):
    token = get_object_or_404(ApiToken.objects.select_related("user"), pk=pk)
    if request.method != "POST":
        return render(
            request,
            "mdm_portal/api_token_revoke.html",
            {"title": "Revoke an API token", "token": token},
        )
    try:
        revoke_token(token, actor=request.user, address=client_address(request))
        messages.success(request, f"Token {token.name} ({token.prefix}…) revoked.")
    except TokenError as exc:
        messages.error(request, str(exc))
    return redirect("api-tokens")
