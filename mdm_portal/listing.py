"""What the staff pages' lists share: filtering by when an entry was made, and ordering and
paging a table from the request without a COUNT(*) over the whole table."""

import django_filters
from django import forms
from django.core.paginator import EmptyPage, PageNotAnInteger
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
    """Order `table` by the request's `sort` (its headers' links) and show its `page`.

    django-tables2's LazyPaginator reads one row more than the page instead of counting them
    all (RequestConfig would page with Django's Paginator, which counts). A page that is not a
    number, or past the end, shows the first.
    """
    sort = request.GET.getlist(table.prefixed_order_by_field)
    if sort:
        table.order_by = sort
    try:
        table.paginate(LazyPaginator, page=request.GET.get("page", 1), per_page=per_page)
    except (PageNotAnInteger, EmptyPage):
        table.paginate(LazyPaginator, page=1, per_page=per_page)
