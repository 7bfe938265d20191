"""Which devices can be pushed: one rule, read as SQL by the sweeps and per device by the pushes.

The protocol: push only after the first TokenUpdate, never to a token APNs declared invalid
(until the device sends a new one), and a push needs both the token and the PushMagic. Each
`Condition` is a Q that a pushable device satisfies and the reason a device failing it is
given. `pushable()` filters on all of them; `with_reasons()` has the database evaluate the very
same Qs for each device and names the first that fails, so what `mdm_push` prints is the
filter's own verdict: the two cannot disagree.

No condition checks that the push token is hexadecimal (it goes into the push's URL path): it
is validated at the source. TokenUpdate is the only writer of a token and stores `Token.hex()`
of a key the check-in pipeline requires to be data (the admin shows it read-only). A regex
condition would cost every sweep for what TokenUpdate already rules out: the keep-alive
selection went from 250 to 400 ms for 500,000 devices on PostgreSQL and from 72 to 220 ms for
200,000 on SQLite, whose REGEXP is a Python function called per row. (A token written around
TokenUpdate, say by hand in SQL, with a byte HTTP/2 refuses in a path, breaks the connection
of the whole batch it is in.)
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from dataclasses import dataclass
from functools import reduce
from string import Formatter
from typing import Any

from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet

from .models import Device


@dataclass(frozen=True)
class Condition:
    """`holds` for every pushable device; `reason` is why a device for which it does not is
    skipped, with `{field}` (a Device field, format spec allowed) taken from that device."""

    name: str
    holds: Q
    reason: str

    @property
    def column(self) -> str:
        """The name of its verdict in `with_reasons()`'s query."""
        return f"pushable_{self.name}"

    def fields(self) -> list[str]:
        """The Device fields its reason names."""
        return [name for _, name, _, _ in Formatter().parse(self.reason) if name]


# In the order a device goes through them: its reason is that of the first one it fails.
CONDITIONS: tuple[Condition, ...] = (
    Condition("managed", Q(state=Device.State.ENROLLED), "device is {state}"),
    Condition("token_update", Q(enrolled_at__isnull=False), "no TokenUpdate yet"),
    Condition(
        "token_valid",
        Q(token_invalid_at__isnull=True),
        "push token invalid since {token_invalid_at:%Y-%m-%d %H:%M} UTC",
    ),
    Condition(
        "token_and_magic",
        ~Q(push_token="") & ~Q(push_magic=""),
        "no push token or PushMagic",
    ),
)

PUSHABLE: Q = reduce(operator.and_, (condition.holds for condition in CONDITIONS))


def pushable(queryset: QuerySet[Device] | None = None) -> QuerySet[Device]:
    """The devices of `queryset` (every device by default) APNs can be asked to wake."""
    return (Device.objects.all() if queryset is None else queryset).filter(PUSHABLE)


def with_reasons(queryset: QuerySet[Device], *fields: str) -> Iterator[tuple[dict[str, Any], str]]:
    """`fields` of each device of `queryset`, and why it cannot be pushed ("" when it can).

    One query: each condition is a boolean column the database computes from its Q.
    """
    verdicts = {
        condition.column: ExpressionWrapper(condition.holds, output_field=BooleanField())
        for condition in CONDITIONS
    }
    named = (name for condition in CONDITIONS for name in condition.fields())
    columns = dict.fromkeys([*fields, *named])
    for row in queryset.annotate(**verdicts).values(*columns, *verdicts):
        yield row, reason(row)


def reason(row: dict[str, Any]) -> str:
    """The reason of the first condition `row` (from `with_reasons`) fails; "" if none."""
    for condition in CONDITIONS:
        if not row[condition.column]:
            return condition.reason.format_map(row)
    return ""
