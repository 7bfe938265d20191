"""Small charts as inline SVG, drawn on the server: no JavaScript, no CDN, readable without
colour (every bar carries its value as text and a <title> for screen readers and tooltips).
Every piece goes through format_html, so a label can never inject markup."""

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString


def _n(value: float) -> str:
    return f"{value:.1f}"


def _svg(width: int, height: int, title: str, parts: list[SafeString]) -> SafeString:
    return format_html(
        '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}">'
        "<title>{}</title>{}</svg>",
        width,
        height,
        title,
        title,
        format_html_join("", "{}", ((part,) for part in parts)),
    )


def _empty(title: str) -> SafeString:
    return format_html('<p class="empty">{}: nothing yet.</p>', title)


def bar_chart(
    points: list[tuple[str, int]],
    *,
    title: str,
    width: int = 640,
    height: int = 180,
    label_every: int = 1,
) -> SafeString:
    """Vertical bars, one per (label, value), with the label under every `label_every`-th."""
    if not points:
        return _empty(title)
    top, bottom, left = 16, 28, 8
    inner = height - top - bottom
    peak = max(value for _, value in points) or 1
    step = (width - left * 2) / len(points)
    bar = max(step * 0.7, 1)
    parts = [
        format_html(
            '<line x1="{}" y1="{}" x2="{}" y2="{}" class="axis"/>',
            left,
            top + inner,
            width - left,
            top + inner,
        )
    ]
    for index, (label, value) in enumerate(points):
        h = inner * value / peak
        x = left + index * step + (step - bar) / 2
        y = top + inner - h
        parts.append(
            format_html(
                '<rect x="{}" y="{}" width="{}" height="{}" class="bar">'
                "<title>{}: {}</title></rect>",
                x,
                y,
                bar,
                h,
                label,
                value,
            )  # fmt: skip
        )
        if value and (len(points) <= 16 or value == peak):
            parts.append(
                format_html(
                    '<text x="{}" y="{}" class="value">{}</text>', _n(x + bar / 2), _n(y - 3), value
                )
            )
        if index % label_every == 0:
            parts.append(
                format_html(
                    '<text x="{}" y="{}" class="label">{}</text>',
                    _n(x + bar / 2),
                    height - 10,
                    label,
                )
            )
    return _svg(width, height, title, parts)


def hbar_chart(points: list[tuple[str, int]], *, title: str, width: int = 420) -> SafeString:
    """Horizontal bars with their label and value: for categories (OS versions, states)."""
    if not points:
        return _empty(title)
    row, label_width = 24, 140
    height = row * len(points) + 8
    peak = max(value for _, value in points) or 1
    room = width - label_width - 60
    parts = []
    for index, (label, value) in enumerate(points):
        y = 4 + index * row
        w = max(room * value / peak, 1 if value else 0)
        parts.append(
            format_html(
                '<text x="{}" y="{}" class="label end">{}</text>'
                '<rect x="{}" y="{}" width="{}" height="{}" class="bar">'
                "<title>{}: {}</title></rect>"
                '<text x="{}" y="{}" class="value start">{}</text>',
                label_width - 6,
                y + 15,
                label,
                label_width,
                y + 3,
                w,
                row - 8,
                label,
                value,
                label_width + w + 6,
                y + 15,
                value,
            )  # fmt: skip
        )
    return _svg(width, height, title, parts)
