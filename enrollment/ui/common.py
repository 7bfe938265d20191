"""What the library, enrollment and group pages share: paging, who acts, where to go back to,
and the confirmation page of destructive actions."""

from django.contrib import messages
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme
from django_tables2 import RequestConfig
from django_tables2.paginators import LazyPaginator

from mdm_portal.audit import client_address

PAGE_SIZE = 50


def paginate(request, table, per_page: int = PAGE_SIZE):
    """Sort and page `table` from the query string (no COUNT(*): LazyPaginator)."""
    RequestConfig(
        request, paginate={"paginator_class": LazyPaginator, "per_page": per_page}
    ).configure(table)
    return table


def acting(request) -> dict:
    """Who acts and from where: the keyword arguments every plain function takes."""
    return {"by": request.user, "address": client_address(request)}


def back_to(request, default: str) -> str:
    """The page a form came from (its `next` field), if it is one of ours, else `default`."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target.startswith("/") and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


def confirm(request, *, title: str, action: str, button: str, cancel: str, **context):
    """The page that asks before a destructive action: what will happen, and one button
    that POSTs to `action`. `context` may hold `explanation` (paragraphs), `consequences`
    (list items), `refusal` (why it cannot be done: no button) and `fields` (hidden inputs)."""
    status = context.pop("status", 200)
    return render(
        request,
        "enrollment/confirm.html",
        {
            "title": title,
            "action": action,
            "button": button,
            "cancel": cancel,
            **context,
        },
        status=status,
    )


def commands_queued(request, what: str, queued: int, skipped: int, command: str) -> None:
    """Tell the person what an action queued, as a message on the next page."""
    text = f"{what}: {command} queued for {queued} device(s)."
    if skipped:
        text += (
            f" {skipped} device(s) skipped: enrolled without the right to install or remove "
            "profiles, or their push token is invalid (they are reconciled when they can be)."
        )
    messages.success(request, text)


def bound(request, form_class, **kwargs):
    """`form_class` filled in from a POST, or blank for a GET."""
    if request.method == "POST":
        return form_class(request.POST, request.FILES or None, **kwargs)
    return form_class(**kwargs)


def submit(form, act, *, errors=(), field=None):
    """Run a form page: for a valid POST, `act(cleaned_data)` does the work and returns the
    answer (a redirect); an error of a type in `errors` it raises lands on `field` of the form
    (None: the whole form). Returns (answer or None, the status to render the form with:
    200 blank, 400 when the POST failed)."""
    if not form.is_bound:
        return None, 200
    if form.is_valid():
        try:
            return act(form.cleaned_data), 200
        except errors as exc:
            form.add_error(field, str(exc))
    return None, 400
