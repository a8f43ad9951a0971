"""The HTML report opens offline and holds one plot per feature and every table; PNG export."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from html.parser import HTMLParser

from featureledger.monitoring import (
    export_plots,
    render_report,
)

PNG = b"\x89PNG\r\n\x1a\n"
NOW = datetime(2024, 6, 1, tzinfo=UTC)


class Page(HTMLParser):
    """Collects what the tests look at: plots, tables, external references, text."""

    def __init__(self) -> None:
        super().__init__()
        self.plots: list[tuple[str, str]] = []  # (feature, img src)
        self.tables: dict[str, int] = {}  # class -> body rows
        self.external: list[str] = []
        self.text: list[str] = []
        self._figure: str | None = None
        self._table: str | None = None
        self._in_body = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href"):
            if a.get(key) and not a[key].startswith(("data:", "#")):
                self.external.append(a[key])
        if tag in ("script", "link", "iframe"):
            self.external.append(tag)
        if tag == "figure" and "plot" in (a.get("class") or ""):
            self._figure = a["data-feature"]
        if tag == "img" and self._figure is not None:
            self.plots.append((self._figure, a["src"]))
        if tag == "table":
            self._table = a.get("class")
            self.tables[self._table] = 0
        if tag == "tbody":
            self._in_body = True
        if tag == "tr" and self._in_body and self._table:
            self.tables[self._table] += 1

    def handle_endtag(self, tag):
        if tag == "figure":
            self._figure = None
        if tag == "tbody":
            self._in_body = False

    def handle_data(self, data):
        self.text.append(data)


def test_report_is_one_self_contained_page(inputs):
    report, findings, sk, rs, cs = inputs
    text = render_report("Monitoring <tx>", report, findings, sk, rs, cs, generated_at=NOW)
    page = Page()
    page.feed(text)
    assert page.external == []  # opens without a network
    assert "Monitoring &lt;tx&gt;" in text  # escaped
    features = list(report.features)
    assert [f for f, _ in page.plots] == features  # one plot per feature, in order
    for _, src in page.plots:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)
    assert page.tables["drift"] == sum(max(len(f.metrics), 1) for f in report.features.values())
    assert page.tables["findings"] == len(findings)
    assert page.tables["skew"] == 1
    body = "".join(page.text)
    for needle in (
        "training_dataset/fraud@v1/2",
        "amount_psi",
        "blocking",
        "tx_fresh",
        "transform mismatch",
        "PSI",
    ):
        assert needle in body


def test_report_defaults_to_the_stats_the_drift_compared(inputs):
    report, *_ = inputs
    page = Page()
    page.feed(render_report("drift only", report))
    assert len(page.plots) == len(report.features)
    assert "skew" not in page.tables and page.tables.get("findings") is None


def test_export_plots_writes_one_png_per_feature(inputs, tmp_path):
    report, _, _, rs, cs = inputs
    paths = export_plots(tmp_path / "plots", report, rs, cs)
    assert [p.stem for p in paths] == list(report.features)
    for p in paths:
        assert p.read_bytes().startswith(PNG)
    assert len(list((tmp_path / "plots").glob("*.png"))) == len(report.features)
