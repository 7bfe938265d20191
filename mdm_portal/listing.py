"""What the staff pages' lists share: filtering by when an entry was made, and paging without a
COUNT(*) over the whole table (django-tables2's LazyPaginator)."""

import django_filters
from django import forms
from django_tables2.paginators import LazyPaginator

PAGE_SIZE = 50
DATE = forms.DateInput(attrs={"type": "date"})


class CreatedBetween(django_filters.FilterSet):
    """`since` and `until` (dates, both included) on the model's `created_at`."""

    since = django_filters.DateFilter(
        field_name="created_at", lookup_expr="date__gte", label="From", widget=DATE
    )
    until = django_filters.DateFilter(
        field_name="created_at", lookup_expr="date__lte", label="Until", widget=DATE
    )


def paginate(table, request, per_page: int = PAGE_SIZE) -> None:
    """Page `table` by the request's `page`, counting no more rows than the page needs."""
    table.paginate(
        paginator_class=LazyPaginator, page=request.GET.get("page", 1), per_page=per_page
    )
