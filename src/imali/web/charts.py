"""Charts drawn on the server as SVG with pygal and embedded in the page: no script, no CDN.

pygal's defaults would fetch its tooltip script from a CDN and write an XML declaration; both are
switched off so the SVG embeds in HTML as it is. pygal still writes an inline script holding its
configuration (labels included) for that tooltip script: it is cut out, so the page runs no code
from a chart. pygal writes the SVG with ElementTree, which escapes every label and value (so no
text inside can close the script element early), and its CSS sits inside the SVG scoped to the
chart's own id."""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal

import pygal
from django.utils.safestring import SafeString, mark_safe
from pygal.style import Style

from .display import money

# The config script, and the generator's comments (its name and home page, on every chart).
_CUT = re.compile(r"<script\b[^>]*>.*?</script>|<!--.*?-->", re.DOTALL)

_STYLE = Style(
    background="transparent", plot_background="transparent", foreground="#1f2a37",
    foreground_strong="#1f2a37", foreground_subtle="#cbd2d9", opacity=".9", opacity_hover="1",
    colors=("#c0392b",), font_family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
    label_font_size=13, major_label_font_size=13, value_font_size=12, value_label_font_size=12,
    title_font_size=15, tooltip_font_size=12,
)


def bar_chart_svg(*, title: str, labels: Sequence[str], values: Sequence[Decimal], series: str,
                  width: int = 640, height: int = 300) -> SafeString:
    """A single-series bar chart of money amounts as inline SVG markup, each bar labelled with its
    amount (so the figures read without hovering)."""
    chart = pygal.Bar(
        style=_STYLE, width=width, height=height, title=title, show_legend=False,
        js=[], disable_xml_declaration=True, explicit_size=False, print_values=True,
        value_formatter=money, show_y_guides=True, margin=12, x_label_rotation=0, truncate_label=-1,
        classes=("pygal-chart", "imali-chart"),
    )
    chart.x_labels = list(labels)
    # Floats only place the bars: a two-place amount's shortest float repr reads back exactly, so
    # the printed labels (money() of each value) show the cents as given.
    chart.add(series, [float(v) for v in values])
    svg = _CUT.sub("", chart.render(is_unicode=True))
    return mark_safe(svg)  # noqa: S308 - ElementTree escaped every text node


def stacked_bar_chart_svg(*, labels: Sequence[str], series: Sequence[tuple[str, str, Sequence[int]]],
                          tooltips: Sequence[str] = (), width: int = 720, height: int = 260,
                          label_every: int = 1) -> SafeString:
    """Counts stacked per column (series: (name, colour, one count per label)); zero draws nothing.
    Every `label_every`-th column is labelled so a month of days stays readable; the page's own
    legend and table name the series and carry every figure."""
    chart = pygal.StackedBar(
        style=Style(**{**_STYLE.__dict__, "colors": tuple(colour for _, colour, _ in series)}),
        width=width, height=height, show_legend=False, js=[], disable_xml_declaration=True,
        explicit_size=False, margin=8, truncate_label=-1, show_y_guides=True, print_values=False,
        x_labels_major_every=max(1, label_every), show_minor_x_labels=False,
        value_formatter=lambda n: f"{int(n):,}", classes=("pygal-chart", "imali-chart"),
    )
    chart.x_labels = list(labels)
    # Whole-number ticks only (pygal's own would print 0.5 steps of a small count as "0, 0, 1, 1").
    peak = max((sum(column) for column in zip(*(counts for _, _, counts in series), strict=True)), default=0)
    step = max(1, -(-peak // 5))
    chart.y_labels = list(range(0, peak + step + 1, step)) if peak else [0, 1]
    for name, _, counts in series:
        chart.add(name, [{"value": n, "label": f"{tooltips[i]}: {n:,} {name}" if tooltips else name} if n else None
                         for i, n in enumerate(counts)])
    return mark_safe(_CUT.sub("", chart.render(is_unicode=True)))  # noqa: S308 - ElementTree escaped every text node
