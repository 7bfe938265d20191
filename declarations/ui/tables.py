"""The lists of the declaration pages (django-tables2 and django-filter): declarations with
their sets, the devices that should have each and how many report it failed; sets; and one
declaration's state on each device."""

from dataclasses import dataclass

import django_filters
import django_tables2 as tables
from django import forms
from django.db.models import Count, Q
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from enrollment.ui.tables import NUM, DeviceTable, device_link

from ..manifest import manifest_of_sets
from ..models import Declaration, DeclarationSet, Kind
from ..schema import REASONS, TYPES
from ..states import STATES, Row, failing_by_declaration
from ..store import devices_of_sets

# Each state's colour: the badge and bar classes of uideclarations.css.
STATE_CLASSES = {state: f"ddm-{state}" for state in STATES}
STATE_HELP = {
    "failed": "the device reported it invalid or with an error",
    "pending": "not yet reported at its current ServerToken",
    "active": "reported active and valid",
    "inactive": "reported valid but not active (an activation's predicate, or no activation)",
    "removing": "no longer assigned: the device removes it at its next sync",
}
RESERVED = {"new", "upload", "sets"}  # the list's own pages, not identifiers
TOKEN = {"td": {"class": "token"}, "th": {"class": "token"}}  # hidden on narrow screens


def breakable(name: str):
    """A dotted name that may wrap after its dots (com.apple.configuration.passcode…)."""
    return format_html_join(mark_safe(".<wbr>"), "{}", ((part,) for part in name.split(".")))


def declaration_url(identifier: str, page: str = "") -> str:
    """The page of a declaration (`page`: "edit", "delete", "data"). An identifier that is
    also one of the list's own pages is reached at <identifier>/about/."""
    if page:
        return reverse(f"declaration-{page}", args=[identifier])
    if identifier in RESERVED:
        return reverse("declaration-about", args=[identifier])
    return reverse("declaration", args=[identifier])


def declaration_link(identifier: str):
    return format_html('<a href="{}">{}</a>', declaration_url(identifier), identifier)


def state_badge(state: str):
    return format_html(
        '<span class="badge {}" title="{}">{}</span>',
        STATE_CLASSES[state],
        STATE_HELP[state],
        state,
    )


def type_title(declaration_type: str) -> str:
    """Apple's title of a Type, readable: "Passcode:Settings" as "Passcode: Settings"."""
    found = TYPES.get(declaration_type)
    return found.title.replace(":", ": ") if found is not None else declaration_type


@dataclass(frozen=True)
class StateCounts:
    """Rows counted per state, as commands/_bar.html draws a command's progress."""

    counts: dict[str, int]

    @property
    def segments(self) -> list[tuple[str, str, int]]:
        return [(STATE_CLASSES[s], s, n) for s, n in self.counts.items() if n]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def describe(self) -> str:
        return ", ".join(f"{n} {state}" for _c, state, n in self.segments) or "no device"


# --- the list of declarations --------------------------------------------------------------


def _type_choices():
    return [(name, f"{type_title(name)} ({name})") for name in sorted(TYPES)]


class DeclarationFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(label="Search", method="search")
    kind = django_filters.ChoiceFilter(label="Kind", choices=Kind.choices, empty_label="any")
    type = django_filters.ChoiceFilter(label="Type", choices=_type_choices, empty_label="any")
    failing = django_filters.BooleanFilter(
        label="Failing only",
        method="failing_only",
        widget=forms.CheckboxInput,
    )

    class Meta:
        model = Declaration
        fields = ["q", "kind", "type", "failing"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.form.label_suffix = ""  # the portal's labels have no colon

    def search(self, queryset, name, value):
        return queryset.filter(
            Q(identifier__icontains=value)
            | Q(description__icontains=value)
            | Q(type__icontains=value)
        )

    def failing_only(self, queryset, name, value):
        return queryset.filter(identifier__in=list(failing_by_declaration())) if value else queryset


class DeviceCounter:
    """How many devices should have each declaration: the sets whose manifest holds it
    (directly or by reference), each set's manifest computed once, then their devices."""

    def __init__(self):
        self.manifests = {
            pk: set(manifest_of_sets([pk]))
            for pk in DeclarationSet.objects.values_list("pk", flat=True)
        }
        self.cache: dict[frozenset[int], int] = {}

    def __call__(self, identifier: str) -> int:
        sets = frozenset(pk for pk, held in self.manifests.items() if identifier in held)
        if sets not in self.cache:
            self.cache[sets] = len(devices_of_sets(sets))
        return self.cache[sets]


class DeclarationTable(tables.Table):
    identifier = tables.Column(verbose_name="Identifier", attrs={"td": {"class": "mono"}})
    kind = tables.Column(verbose_name="Kind")
    type = tables.Column(verbose_name="Type")
    server_token = tables.Column(verbose_name="ServerToken", orderable=False, attrs=TOKEN)
    set_names = tables.Column(verbose_name="Sets", empty_values=(), orderable=False)
    devices = tables.Column(verbose_name="Devices", empty_values=(), orderable=False, attrs=NUM)
    failing = tables.Column(verbose_name="Failing", empty_values=(), orderable=False, attrs=NUM)
    updated_at = tables.DateTimeColumn(
        verbose_name="Updated", format="Y-m-d H:i", attrs={"td": {"class": "nowrap"}}
    )

    class Meta:
        model = Declaration
        fields = ("identifier", "kind", "type", "server_token", "updated_at")
        sequence = ("identifier", "kind", "type", "server_token", "set_names", "devices", "...")
        order_by = ("kind", "identifier")
        empty_text = "No declaration matches."

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.failing_counts = failing_by_declaration()
        self.count_devices = DeviceCounter()

    def render_identifier(self, value):
        return declaration_link(value)

    def render_type(self, value):
        return format_html(
            '{}<br><code class="small muted typename">{}</code>',
            type_title(value),
            breakable(value),
        )

    def render_server_token(self, value):
        return format_html('<code title="{}">{}…</code>', value, value[:10])

    def render_set_names(self, record):
        sets = list(record.sets.all())  # prefetched
        if not sets:
            return mark_safe('<span class="muted">none</span>')
        return format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            ((reverse("declaration-set", args=[s.pk]), s.name) for s in sets),
        )

    def render_devices(self, record):
        return self.count_devices(record.identifier)

    def render_failing(self, record):
        failing = self.failing_counts.get(record.identifier, 0)
        if not failing:
            return "0"
        return format_html(
            '<a href="{}#states"><span class="badge ddm-failed">{} device{}</span></a>',
            declaration_url(record.identifier),
            failing,
            "" if failing == 1 else "s",
        )


# --- sets ----------------------------------------------------------------------------------


class SetTable(tables.Table):
    name = tables.Column(linkify=lambda record: reverse("declaration-set", args=[record.pk]))
    description = tables.Column(default="—", orderable=False)
    declaration_count = tables.Column(verbose_name="Declarations", attrs=NUM)
    group_count = tables.Column(verbose_name="Groups", attrs=NUM)
    device_count = tables.Column(verbose_name="Devices (directly)", attrs=NUM)
    created_at = tables.DateTimeColumn(verbose_name="Created", format="Y-m-d")

    class Meta:
        model = DeclarationSet
        fields = (
            "name",
            "description",
            "declaration_count",
            "group_count",
            "device_count",
            "created_at",
        )
        order_by = "name"
        empty_text = "No declaration set yet."


def sets_with_counts():
    return DeclarationSet.objects.annotate(
        declaration_count=Count("declarations", distinct=True),
        group_count=Count("groups", distinct=True),
        device_count=Count("devices", distinct=True),
    )


# --- one declaration on its devices ----------------------------------------------------------


def reasons_html(reasons: list):
    """A device's reasons: code, its description, and what Apple says the code means."""
    if not reasons:
        return mark_safe('<span class="muted">—</span>')
    items = []
    for reason in reasons:
        reason = reason if isinstance(reason, dict) else {"code": str(reason)}
        code = str(reason.get("code", ""))
        meaning = REASONS.get(code, "")
        items.append(
            (
                code,
                reason.get("description") or "",
                format_html('<span class="meaning">{}</span>', meaning) if meaning else "",
            )
        )
    return format_html(
        '<ul class="reasons">{}</ul>',
        format_html_join("", "<li><code>{}</code> {} {}</li>", items),
    )


class StateTable(tables.Table):
    """Rows of declarations.states: one declaration on many devices, or one device's."""

    device = tables.Column(verbose_name="Device", empty_values=(), orderable=False)
    identifier = tables.Column(verbose_name="Declaration", orderable=False)
    kind = tables.Column(verbose_name="Kind", orderable=False)
    state = tables.Column(verbose_name="State", orderable=False)
    reasons = tables.Column(verbose_name="Reasons", empty_values=(), orderable=False)
    reported = tables.Column(verbose_name="Reported", empty_values=(), orderable=False)

    class Meta:
        empty_text = "No device should have it or reports it."
        attrs = {"class": "states"}

    def render_device(self, record: Row):
        return device_link(record.device)

    def render_identifier(self, record: Row):
        return declaration_link(record.identifier) if record.server_token else record.identifier

    def render_state(self, record: Row):
        return state_badge(record.state)

    def render_reasons(self, record: Row):
        return reasons_html(record.reasons)

    def render_reported(self, record: Row):
        if record.reported is None:
            return mark_safe('<span class="muted">never</span>')
        return format_html(
            '{}<br><code class="small muted" title="the ServerToken it reported">{}…</code>',
            record.reported.reported_at.strftime("%Y-%m-%d %H:%M"),
            record.reported.server_token[:10],
        )


class AssignedDeviceTable(DeviceTable):
    """The devices a set is assigned to directly, each with its Unassign… link (operators)."""

    unassign = tables.Column(verbose_name="", empty_values=(), orderable=False)

    class Meta(DeviceTable.Meta):
        empty_text = "Not assigned to any device directly."

    def __init__(self, *args, set_pk: int, may_change: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.set_pk = set_pk
        if not may_change:
            self.columns.hide("unassign")

    def render_unassign(self, record):
        return format_html(
            '<a class="btn small" href="{}?device={}">Unassign…</a>',
            reverse("declaration-set-unassign", args=[self.set_pk]),
            record.udid,
        )
