"""The registry of issued device identities as the pages and the API list it, with one filter
for both: the delivery (ACME, SCEP, PKCS#12, or not recorded for certificates issued before it
was), and a search on the serial, the subject, or the serial number or UDID an attestation
proved. Which device a certificate is bound to is the layers above's to add (they join it)."""

import django_filters
from django import forms
from django.db.models import Q, QuerySet

from .models import IssuedCertificate

# The deliveries as the pages name them; "" is a certificate issued before it was recorded.
DELIVERIES = {"acme": "ACME", "scep": "SCEP", "pkcs12": "PKCS#12"}
NOT_RECORDED = "none"


class IssuedFilter(django_filters.FilterSet):
    delivery = django_filters.ChoiceFilter(
        label="Delivery",
        choices=[*DELIVERIES.items(), (NOT_RECORDED, "not recorded")],
        empty_label="any",
        method="by_delivery",
    )
    q = django_filters.CharFilter(
        label="Serial, subject, attested serial or UDID",
        method="search",
        widget=forms.TextInput(attrs={"type": "search", "spellcheck": "false"}),
    )

    class Meta:
        model = IssuedCertificate
        fields = ["delivery", "q"]

    def by_delivery(self, queryset, name, value):
        return queryset.filter(delivery="" if value == NOT_RECORDED else value)

    def search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(
            Q(serial__iexact=value)
            | Q(subject__icontains=value)
            | Q(attested_udid__iexact=value)
            | Q(attested_serial__iexact=value)
        )


def issued_certificates() -> QuerySet[IssuedCertificate]:
    """Every issued identity, newest first (the PEM left unread)."""
    return IssuedCertificate.objects.defer("certificate_pem").order_by("-created_at", "-id")
