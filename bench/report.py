"""The benchmark set's table: each part's figures as rows (figure, value, target, verdict).

`rows(part, figures)` gives a part's rows; `table(rows)` the text bench/run.py prints. A row's
`ok` is True (pass), False (FAIL) or None (a figure without a target).
"""

from dataclasses import asdict, dataclass


@dataclass
class Row:
    figure: str
    value: str
    target: str = ""
    ok: bool | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _at_scale(f: dict, scale: int, ok: bool) -> bool | None:
    """A target set for `scale` devices judges only a run at that scale (not --quick)."""
    return ok if f["devices"] == scale else None


def _rate(figures: dict) -> str:
    return f"{figures['per_second']:,.0f}/s"


def loop_rows(f: dict) -> list[Row]:
    loop, floor = f["loop"], f["floor"]
    rows = [
        Row("floor: /ping, empty Django view", _rate(floor)),
        Row("command loop: exchanges", _rate(loop), ">= 1,500/s", loop["per_second"] >= 1500),
        Row("command loop / floor", f"{f['ratio']:.2f}x", ">= 0.3x", f["ratio"] >= 0.3),
        Row(
            "command loop latency p50 / p95",
            f"{loop['p50_us'] / 1000:.1f} / {loop['p95_us'] / 1000:.1f} ms",
        ),
        Row(
            "command loop latency p99",
            f"{loop['p99_us'] / 1000:.1f} ms",
            "< 50 ms",
            loop["p99_us"] < 50_000,
        ),
        Row("command loop errors", f"{f['errors']}", "0", f["errors"] == 0),
    ]
    for kind, count in f["statements_per_exchange"].items():
        label = kind.replace("_to_", " -> ").replace("_", " ")
        rows.append(Row(f"SQL statements: {label}", str(count), "<= 4", count <= 4))
    return rows


def enroll_rows(f: dict) -> list[Row]:
    latency = f.get("latency_ms", {})
    return [
        Row(
            f"enrollment: {f['enrolled']}/{f['devices']} devices",
            f"{f['per_second']:,.1f}/s",
            ">= 100/s",
            f["per_second"] >= 100 and f["enrolled"] == f["devices"],
        ),
        Row(
            "enrollment requests, latency p50 / p95 / p99",
            f"{f.get('requests_per_second') or 0:,.0f}/s, "
            + " / ".join(f"{latency.get(p, 0):.0f}" for p in ("p50", "p95", "p99"))
            + " ms",
        ),
    ]


def scep_rows(f: dict) -> list[Row]:
    portal, yardstick = f["portal"], f["scepserver"]
    ratio = f["ratio"]
    return [
        Row(
            f"SCEP, portal: {portal['issued']}/{portal['requests']} issued",
            f"{portal['per_second']:,.1f}/s",
            "no failures",
            portal["failures"] == 0,
        ),
        Row(
            f"SCEP, scepserver: {yardstick['issued']}/{yardstick['requests']} issued",
            f"{yardstick['per_second']:,.1f}/s",
        ),
        Row(
            "SCEP, portal / scepserver",
            "n/a" if ratio is None else f"{ratio:.2f}x",
            ">= 2x",
            ratio is not None and ratio >= 2,
        ),
    ]


def push_rows(f: dict) -> list[Row]:
    run = f["runs"][0]
    ok = run["seconds"] < 1.5 and run["ok"] == f["devices"]
    return [
        Row(
            f"pushes: {run['ok']:,}/{f['devices']:,} at concurrency {run['concurrency']}",
            f"{run['seconds']:.2f} s ({run['per_second']:,.0f}/s)",
            "10,000 in < 1.5 s",
            _at_scale(f, 10_000, ok),
        )
    ]


def sweep_rows(f: dict) -> list[Row]:
    sweep = f["mark_inactive"]
    return [
        Row(
            f"inactivity sweep over {f['devices']:,} devices ({sweep['devices']:,} marked)",
            f"{sweep['seconds']:.2f} s",
            "1,000,000 in < 5 s",
            _at_scale(f, 1_000_000, sweep["seconds"] < 5),
        ),
        Row("keep-alive selection", f"{f['keepalive_due']['seconds']:.2f} s"),
    ]


def ui_rows(f: dict) -> list[Row]:
    first = next(iter(f["pages"].values()))["median_ms"]
    return [
        Row(figure, f"{median:.0f} ms", "< 150 ms at 100,000", _at_scale(f, 100_000, median < 150))
        for figure, median in (
            (f"device list at {f['devices']:,} devices ({f['through']}), page 1 (median)", first),
            (f"device list, slowest of {len(f['pages'])} pages (median)", f["slowest_median_ms"]),
        )
    ]


def rss_rows(f: dict) -> list[Row]:
    return [
        Row(
            f"web worker RSS, max of {len(f['workers'])}",
            f"{f['max_mb']:.0f} MB",
            "< 150 MB",
            f["max_mb"] < 150,
        )
    ]


ROWS = {
    "loop": loop_rows,
    "enroll": enroll_rows,
    "scep": scep_rows,
    "push": push_rows,
    "sweep": sweep_rows,
    "ui": ui_rows,
    "rss": rss_rows,
}


def rows(part: str, figures: dict) -> list[Row]:
    if "skipped" in figures:
        return [Row(f"{part}: skipped", figures["skipped"])]
    if "error" in figures:
        return [Row(f"{part}: error", figures["error"].strip().splitlines()[-1][:80], "", False)]
    return ROWS[part](figures)


def verdict(row: Row) -> str:
    return {True: "pass", False: "FAIL", None: ""}[row.ok]


def table(all_rows: list[Row]) -> str:
    header = Row("figure", "value", "target")
    lines = [header, *all_rows]
    widths = [max(len(getattr(r, name)) for r in lines) for name in ("figure", "value", "target")]
    out = []
    for number, row in enumerate(lines):
        cells = [row.figure, row.value, row.target]
        text = "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
        out.append(f"{text}  {'result' if number == 0 else verdict(row)}".rstrip())
        if number == 0:
            out.append("-" * len(out[0]))
    return "\n".join(out)
