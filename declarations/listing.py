"""Declarations and sets as lists show them: each declaration with how many devices it fails
on, and the filters a list offers (kind, Type, a search on the Identifier, failing only); each
set with its counts. One place, so the pages and the API filter alike."""

import django_filters
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from .models import Declaration, DeclarationSet, DeclarationState, Kind


def declarations_listed() -> QuerySet:
    """Every declaration, annotated with `failing_devices`: the devices that report it failed."""
    failed = (
        DeclarationState.objects.filter(identifier=OuterRef("identifier"), failed=True)
        .values("identifier")
        .annotate(devices=Count("device", distinct=True))
        .values("devices")
    )
    return Declaration.objects.select_related("served").annotate(
        failing_devices=Coalesce(Subquery(failed, output_field=IntegerField()), Value(0))
    )


class DeclarationFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=Kind.choices)
    type = django_filters.CharFilter(field_name="type", help_text="a Type, exactly")
    q = django_filters.CharFilter(
        field_name="identifier", lookup_expr="icontains", help_text="part of the Identifier"
    )
    failing = django_filters.BooleanFilter(
        method="_failing", help_text="true: only those some device reports failed"
    )

    class Meta:
        model = Declaration
        fields = ["kind", "type", "q", "failing"]

    def _failing(self, queryset: QuerySet, name: str, value: bool | None) -> QuerySet:
        if value is None:
            return queryset
        return (
            queryset.filter(failing_devices__gt=0) if value else queryset.filter(failing_devices=0)
        )


def sets_listed() -> QuerySet:
    """Every set, with its declarations and the counts of what it is assigned to directly."""
    return DeclarationSet.objects.annotate(
        device_count=Count("devices", distinct=True),
        group_count=Count("groups", distinct=True),
    ).prefetch_related("declarations")
