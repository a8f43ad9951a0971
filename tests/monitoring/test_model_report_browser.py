"""The model's monitoring page as a reader sees it, laid out and painted by headless
Chromium: the estimated-vs-realized plots with their band and the reconstruction-error plot
are shown full size, and the chunks that left the band are marked red."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from featureledger.monitoring.model_report import render_model_report
from featureledger.monitoring.performance import PerformanceEstimator
from featureledger.monitoring.report import PLOT_DPI, PLOT_SIZE

from .test_report_browser import HEIGHT, WIDTH, overlap, run_chromium

NOW = datetime(2025, 1, 1, tzinfo=UTC)

MEASURE = """
<script>
window.addEventListener("load", () => {
  const box = (e) => { const r = e.getBoundingClientRect();
    return {x: r.left, y: r.top, w: r.width, h: r.height}; };
  const plots = [...document.querySelectorAll("figure.plot")].map((f) => {
    const img = f.querySelector("img");
    return {plot: f.dataset.plot, figure: box(f), img: box(img),
            natural: [img.naturalWidth, img.naturalHeight]};
  });
  const alerts = document.querySelectorAll("#performance .status.alert").length;
  const drift = document.querySelectorAll("#drift .status.alert").length;
  const out = document.createElement("pre");
  out.id = "measured";
  out.textContent = JSON.stringify({plots, alerts, drift});
  document.body.appendChild(out);
});
</script>
"""


def frame(n: int, spread: float, rho: float, seed: int) -> pa.Table:
    """x, z with correlation ``rho``; P(y=1) = sigmoid(2x - z), scored by the true model."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, spread, n)
    z = rho * x / spread + np.sqrt(1 - rho**2) * rng.normal(0, 1, n)
    p = 1 / (1 + np.exp(-(2 * x - z)))
    y = (rng.random(n) < p).astype(float)
    return pa.table({"x": x, "z": z, "score": p, "prediction": (p >= 0.5) * 1.0, "label": y})


@pytest.mark.subprocess
def test_model_report_in_a_browser_shows_the_bands_and_the_shifted_chunks(
    tmp_path: Path,
) -> None:
    est = PerformanceEstimator.fit(frame(3000, 1.5, 0.8, seed=1), chunk_size=500)
    # two steady chunks, then two where x narrows and the correlation is gone
    logged = pa.concat_tables(
        [frame(1000, 1.5, 0.8, seed=2), frame(1000, 0.3, 0.0, seed=3)]
    ).drop_columns(["label"])
    labels = frame(1000, 1.5, 0.8, seed=2).column("label")
    with_labels = logged.append_column(
        "label", pa.concat_arrays([labels.combine_chunks(), pa.nulls(1000, pa.float64())])
    )
    perf = est.estimate(with_labels, chunk_size=500, model="model/risk/1")
    drift = est.drift(logged, chunk_size=500, model="model/risk/1")
    assert [r.alert for r in perf.series("roc_auc")] == [False, False, True, True]
    assert [c.alert for c in drift.multivariate] == [False, False, True, True]
    html = render_model_report(
        "model/risk/1",
        perf,
        drift,
        [{"monitor": "risk_auc", "status": "alert", "message": "retrain with recent data"}],
        generated_at=NOW,
        png_dir=tmp_path / "png",
    )
    assert "retrain with recent data" in html
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == [
        "performance_f1.png",
        "performance_roc_auc.png",
        "reconstruction_error.png",
    ]
    page = tmp_path / "model.html"
    page.write_text(html.replace("</body>", MEASURE + "</body>"))

    dom = run_chromium(page, tmp_path / "profile-dom", "--dump-dom")
    found = re.search(r'<pre id="measured">(.*?)</pre>', dom.stdout, re.S)
    assert found, dom.stderr[-2000:]
    measured = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    plots = measured["plots"]
    assert [p["plot"] for p in plots] == [
        "performance_roc_auc",
        "performance_f1",
        "reconstruction_error",
    ]
    width, height = (round(v * PLOT_DPI) for v in PLOT_SIZE)
    for p in plots:
        assert p["natural"] == [width, height], p
        assert abs(p["img"]["w"] - width) <= 1 and abs(p["img"]["h"] - height) <= 1, p
    for i, a in enumerate(plots):
        for b in plots[i + 1 :]:
            assert not overlap(a["figure"], b["figure"]), (a, b)
    # 2 shifted chunks x 2 metrics in the table, 2 chunks in the drift table
    assert measured["alerts"] == 4 and measured["drift"] == 2

    shot = tmp_path / "model.png"
    done = run_chromium(page, tmp_path / "profile-shot", f"--screenshot={shot}")
    assert shot.exists(), done.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (WIDTH, HEIGHT)
    # the red markers of chunks outside the band are painted inside each plot
    painted = [p for p in plots if p["img"]["y"] + p["img"]["h"] <= HEIGHT]
    assert len(painted) == 3
    for p in painted:
        box = p["img"]
        crop = np.asarray(
            image.crop(
                (int(box["x"]), int(box["y"]), int(box["x"] + box["w"]), int(box["y"] + box["h"]))
            )
        ).astype(int)
        red = (
            (abs(crop[..., 0] - 198) <= 12)
            & (abs(crop[..., 1] - 40) <= 12)
            & (abs(crop[..., 2] - 40) <= 12)
        )
        assert red.sum() > 50, p["plot"]
