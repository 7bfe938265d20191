"""Showing what devices answer so a person can read it: `{% readable value %}`.

The answers are JSON-safe data (devices.inventory.json_safe: data as base64, dates as ISO
8601). Dictionaries become key/value lists, lists of like dictionaries become tables, other
lists numbered lists, booleans Yes/No; nothing is dropped. `{{ value|as_json }}` is the raw
view beside it. Secrets are the caller's business: pass data through mdm_portal.masking.masked
first.
"""

import datetime as dt
import json
import re

from django import template
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import timesince

register = template.Library()

MAX_DEPTH = 6  # deeper than this is shown as JSON
TABLE_COLUMNS = 8  # lists of dictionaries with more distinct keys are lists of key/value lists
LONG_TEXT = 160  # longer strings are cut, the whole text in a <details>
_ISO_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?$")


def _scalar(value) -> SafeString:
    if value is None:
        return mark_safe('<span class="muted">—</span>')
    if isinstance(value, bool):
        return format_html(
            '<span class="yesno {}">{}</span>', str(value).lower(), "Yes" if value else "No"
        )
    if isinstance(value, int | float):
        return format_html("{}", value)
    text = str(value)
    if _ISO_DATETIME.match(text):
        try:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return format_html("{}", text)
        return format_html(
            '<time datetime="{}">{}</time>', text, moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
        )
    if text == "":
        return mark_safe('<span class="muted">(empty)</span>')
    if len(text) > LONG_TEXT:
        return format_html(
            '<details class="longtext"><summary><code>{}…</code></summary>'
            "<code>{}</code></details>",
            text[:LONG_TEXT],
            text,
        )
    return format_html("{}", text)


def _table(rows: list[dict], columns: list[str], depth: int) -> SafeString:
    head = format_html_join("", '<th scope="col">{}</th>', ((c,) for c in columns))
    body = format_html_join(
        "",
        "<tr>{}</tr>",
        (
            (
                format_html_join(
                    "", "<td>{}</td>", ((render(row.get(c), depth + 1),) for c in columns)
                ),
            )
            for row in rows
        ),
    )
    return format_html(
        '<div class="tablewrap nested"><table><thead><tr>{}</tr></thead>'
        "<tbody>{}</tbody></table></div>",
        head,
        body,
    )


def render(value, depth: int = 0) -> SafeString:
    """`value` as HTML a person can read (everything escaped)."""
    if depth > MAX_DEPTH:
        return format_html('<pre class="readable">{}</pre>', as_json(value))
    if isinstance(value, dict):
        if not value:
            return mark_safe('<span class="muted">(none)</span>')
        items = format_html_join(
            "",
            "<dt>{}</dt><dd>{}</dd>",
            ((key, render(item, depth + 1)) for key, item in value.items()),
        )
        return format_html('<dl class="facts readable">{}</dl>', items)
    if isinstance(value, list):
        if not value:
            return mark_safe('<span class="muted">(none)</span>')
        if all(isinstance(item, dict) for item in value):
            columns = list(dict.fromkeys(key for item in value for key in item))
            flat = all(not isinstance(v, dict | list) for item in value for v in item.values())
            if flat and len(columns) <= TABLE_COLUMNS:
                return _table(value, columns, depth)
        if all(not isinstance(item, dict | list) for item in value):
            return format_html_join(", ", "{}", ((_scalar(item),) for item in value))
        items = format_html_join("", "<li>{}</li>", ((render(item, depth + 1),) for item in value))
        return format_html('<ol class="readable">{}</ol>', items)
    return _scalar(value)


@register.simple_tag(name="readable")
def readable_tag(value):
    return render(value)


@register.filter
def as_json(value) -> str:
    """Indented JSON, for the "raw" view of an answer."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def error_text(error: dict) -> str:
    """One ErrorChain entry in words: its description, then domain and code."""
    description = error.get("LocalizedDescription") or error.get("USEnglishDescription") or ""
    where = " ".join(str(error[k]) for k in ("ErrorDomain", "ErrorCode") if k in error)
    if description and where:
        return f"{description} ({where})"
    return description or where or json.dumps(error, sort_keys=True)


@register.filter
def error_chain(chain) -> SafeString:
    """An ErrorChain (a list of errors, outermost first) as a list of sentences."""
    if not chain:
        return mark_safe("")
    if not isinstance(chain, list):
        chain = [chain]
    items = format_html_join(
        "", "<li>{}</li>", ((error_text(e) if isinstance(e, dict) else str(e),) for e in chain)
    )
    return format_html('<ul class="errorchain">{}</ul>', items)


@register.filter
def ago(moment) -> SafeString:
    """ "3 hours ago" (the exact time as a tooltip); "just now" within a minute; "never"."""
    if moment is None:
        return mark_safe('<span class="muted">never</span>')
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment)
    if timezone.now() - moment < dt.timedelta(minutes=1):
        words = "just now"
    else:
        words = timesince(moment, depth=1) + " ago"
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        moment.isoformat(),
        moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        words,
    )


@register.filter
def isodate(value) -> str:
    """An ISO 8601 string (as JSON-safe data carries dates) as "YYYY-MM-DD HH:MM:SS"."""
    if not value:
        return "—"
    try:
        return dt.datetime.fromisoformat(str(value)).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return str(value)


@register.filter
def spaced(value) -> str:
    """A stored name in words: not_now -> not now."""
    return str(value).replace("_", " ")
