"""The webhooks page (/webhooks/, admins): the registered URLs, adding one (its secret is
shown on that answer only), and per webhook its delivery log, a ping, sending the given-up
deliveries again, turning it off and removing it. The work is webhooks.registry's."""

from django import forms
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from mdm_portal.audit import client_address
from mdm_portal.roles import ADMIN, role_required

from .models import TOPICS, Delivery, Webhook
from .registry import (
    WebhookError,
    create_webhook,
    delete_webhook,
    ping,
    retry_failed,
    update_webhook,
    with_counts,
)

LOG_SIZE = 50


class WebhookForm(forms.Form):
    url = forms.URLField(
        max_length=500, label="URL", assume_scheme="https", help_text="where events are POSTed"
    )
    events = forms.MultipleChoiceField(
        choices=[(topic, topic) for topic in TOPICS],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="none ticked: every event",
    )
    secret = forms.CharField(
        required=False,
        min_length=16,
        max_length=200,
        help_text="the X-Hmac-Signature key; left empty, one is generated and shown once",
    )
    description = forms.CharField(required=False, max_length=200)


def _webhooks():
    return with_counts()


def _list(request, form, *, secret=None, created=None, status=200):
    context = {
        "title": "Webhooks",
        "form": form,
        "webhooks": _webhooks(),
        "secret": secret,
        "created": created,
    }
    return render(request, "webhooks/webhooks.html", context, status=status)


@role_required(ADMIN)
def webhooks(request):
    if request.method != "POST":
        return _list(request, WebhookForm())
    form = WebhookForm(request.POST)
    if not form.is_valid():
        return _list(request, form, status=400)
    try:
        webhook, secret = create_webhook(
            form.cleaned_data["url"],
            events=form.cleaned_data["events"],
            secret=form.cleaned_data["secret"],
            description=form.cleaned_data["description"],
            actor=request.user,
            address=client_address(request),
        )
    except WebhookError as exc:
        form.add_error(None, str(exc))
        return _list(request, form, status=400)
    return _list(request, WebhookForm(), secret=secret, created=webhook)


@role_required(ADMIN)
def detail(request, pk: int):
    webhook = get_object_or_404(_webhooks(), pk=pk)
    log = (
        Delivery.objects.filter(webhook=webhook)
        .select_related("event")
        .prefetch_related("attempt_log")
        .order_by("-id")[:LOG_SIZE]
    )
    context = {"title": f"Webhook {webhook.url}", "webhook": webhook, "log": log}
    return render(request, "webhooks/webhook.html", context)


@role_required(ADMIN)
@require_POST
def act(request, pk: int, what: str):
    webhook = get_object_or_404(Webhook, pk=pk)
    address = client_address(request)
    if what == "ping":
        ping(webhook, actor=request.user, address=address)
        messages.success(request, "A portal.ping event is on its way.")
    elif what == "retry":
        count = retry_failed(webhook, actor=request.user, address=address)
        messages.success(request, f"{count} given-up deliveries will be sent again.")
    elif what == "toggle":
        update_webhook(webhook, active=not webhook.active, actor=request.user, address=address)
        messages.success(request, "Webhook turned " + ("on." if webhook.active else "off."))
    else:
        return redirect("webhook", pk=pk)
    return redirect("webhook", pk=pk)


@role_required(ADMIN)
def remove(request, pk: int):
    webhook = get_object_or_404(Webhook, pk=pk)
    if request.method != "POST":
        return render(
            request,
            "webhooks/webhook_remove.html",
            {"title": "Remove a webhook", "webhook": webhook},
        )
    delete_webhook(webhook, actor=request.user, address=client_address(request))
    messages.success(request, f"Webhook {webhook.url} removed.")
    return redirect("webhooks")
