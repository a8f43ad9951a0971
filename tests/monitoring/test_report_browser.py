"""The report as a reader sees it: laid out and painted by a real headless Chromium (the
Debian ``chromium`` binary, installed by scripts/install-services.sh), plus the text
boxes inside each plot as matplotlib lays them out."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from featureledger.monitoring import render_report
from featureledger.monitoring.report import PLOT_DPI, PLOT_SIZE, _figure

NOW = datetime(2024, 6, 1, tzinfo=UTC)
WIDTH, HEIGHT = 1280, 5000
ALERT_RED = (198, 40, 40)  # #c62828

#: run in the page once it has loaded: what the reader sees, measured by the browser
MEASURE = """
<script>
window.addEventListener("load", () => {
  const box = (e) => { const r = e.getBoundingClientRect();
    return {x: r.left, y: r.top, w: r.width, h: r.height}; };
  const plots = [...document.querySelectorAll("figure.plot")].map((f) => {
    const img = f.querySelector("img");
    return {feature: f.dataset.feature, figure: box(f), img: box(img),
            natural: [img.naturalWidth, img.naturalHeight],
            caption: box(f.querySelector("figcaption"))};
  });
  const badges = [...document.querySelectorAll("table.drift tbody tr")].map((tr) => {
    const cells = [...tr.querySelectorAll("td")];
    const badge = cells[cells.length - 2].querySelector(".status");
    return {metric: cells[cells.length - 5].textContent, cls: badge.className,
            text: badge.textContent, color: getComputedStyle(badge).backgroundColor,
            box: box(badge)};
  }).filter((b) => b.metric);
  const out = document.createElement("pre");
  out.id = "measured";
  out.textContent = JSON.stringify({plots, badges, scrollY: window.scrollY});
  document.body.appendChild(out);
});
</script>
"""


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(
            "chromium is not installed: run scripts/install-services.sh (Debian package "
            "'chromium'), which installs every program the test suite needs"
        )
    return path


def run_chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # a profile per test: two xdist workers never share one
    return subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",  # tests run as root in CI containers
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            f"--user-data-dir={profile}",
            f"--window-size={WIDTH},{HEIGHT}",
            "--virtual-time-budget=10000",
            *args,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def overlap(a: dict, b: dict) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


@pytest.mark.subprocess
def test_report_in_a_browser_shows_full_size_plots_and_neutral_info_badges(
    inputs, tmp_path: Path
) -> None:
    report, findings, sk, rs, cs = inputs
    html = render_report("Monitoring tx", report, findings, sk, rs, cs, generated_at=NOW)
    page = tmp_path / "report.html"
    page.write_text(html.replace("</body>", MEASURE + "</body>"))

    dom = run_chromium(page, tmp_path / "profile-dom", "--dump-dom")
    found = re.search(r'<pre id="measured">(.*?)</pre>', dom.stdout, re.S)
    assert found, dom.stderr[-2000:]
    measured = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))

    plots = measured["plots"]
    assert [p["feature"] for p in plots] == list(report.features)
    width, height = (round(v * PLOT_DPI) for v in PLOT_SIZE)
    assert (width, height) == (800, 450)
    for p in plots:
        # drawn at 800 x 450 and shown at that size: not scaled down to a thumbnail
        assert p["natural"] == [width, height], p
        assert abs(p["img"]["w"] - width) <= 1 and abs(p["img"]["h"] - height) <= 1, p
        assert not overlap(p["img"], p["caption"]), p  # the caption sits below the plot
    for i, a in enumerate(plots):
        for b in plots[i + 1 :]:
            assert not overlap(a["figure"], b["figure"]), (a, b)

    badges = measured["badges"]
    info = [b for b in badges if "(info)" in b["metric"]]
    decisive = [b for b in badges if "(info)" not in b["metric"]]
    assert info and decisive
    # KS on 1,500 rows of a shifted distribution: p ~ 0, beyond its alert level, yet
    # informational only; the reader sees a neutral badge, not a red alarm
    ks = [b for b in info if b["metric"].startswith("ks")]
    assert ks and all(b["cls"] == "status info" and b["text"] == "info" for b in ks), ks
    assert all("alert" not in b["cls"] for b in info)
    assert all(b["color"] != "rgb(198, 40, 40)" for b in info)
    assert any(b["cls"] == "status alert" for b in decisive)

    # the painted page agrees: red where the status is alert, not under an info badge
    shot = tmp_path / "report.png"
    done = run_chromium(page, tmp_path / "profile-shot", f"--screenshot={shot}")
    assert shot.exists(), done.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (WIDTH, HEIGHT)

    def left_edge(b: dict) -> tuple[int, int, int]:
        # inside the badge's padding, left of its text
        return image.getpixel((int(b["box"]["x"]) + 2, int(b["box"]["y"] + b["box"]["h"] / 2)))

    def near(color: tuple[int, int, int], target: tuple[int, int, int]) -> bool:
        return all(abs(x - y) <= 12 for x, y in zip(color, target, strict=True))

    assert near(left_edge(next(b for b in decisive if b["cls"] == "status alert")), ALERT_RED)
    for b in ks:
        assert not near(left_edge(b), ALERT_RED), b


def test_plot_title_and_note_do_not_overlap(inputs) -> None:
    report, _, _, rs, cs = inputs
    name = "amount"  # shifted: part of the current side lies above the reference range
    fig = _figure(name, report.features[name], rs[name], cs[name], PLOT_DPI)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (ax,) = fig.axes
    title = fig._suptitle.get_window_extent(renderer)
    note_text = ax._left_title  # matplotlib's artist for set_title(loc="left")
    assert note_text.get_text().startswith("current: ")  # the note is drawn
    note = note_text.get_window_extent(renderer)
    assert not title.overlaps(note)
    legend = ax.get_legend().get_window_extent(renderer)
    assert not note.overlaps(legend)
    assert fig.get_size_inches().tolist() == list(PLOT_SIZE)
    # legible: no text smaller than 10 pt
    sizes = [t.get_fontsize() for t in fig.findobj(lambda a: hasattr(a, "get_fontsize"))]
    assert min(sizes) >= 10, sizes
