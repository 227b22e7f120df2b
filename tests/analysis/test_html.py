"""The HTML report is one self-contained file that shows the verdict and its criteria."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from arbiter.analysis import analyze_model
from arbiter.events import EventStore
from arbiter.report.html import write_html
from tests.analysis.test_analyze import _shadow_log


def test_html_report_is_self_contained(
    ab_log: Callable[..., EventStore], rng: np.random.Generator, tmp_path: Path
) -> None:
    store = ab_log(3000, 3000, 0.80, 0.88)
    _shadow_log(store, rng, 1500, 0.80, 0.86)
    with store.connect() as con:
        analyses = analyze_model(con, "m")
    assert [a.experiment for a in analyses] == ["m-ab", "m-shadow"]
    path = write_html(analyses, tmp_path / "out" / "m-analysis.html", model="m")
    html = path.read_text(encoding="utf-8")
    # Nothing to fetch: no remote (or any) src/href, every image inline.
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html)
    assert "<link" not in html and "<script" not in html
    images = re.findall(r'<img [^>]*src="([^"]+)"', html)
    assert images and all(src.startswith("data:image/png;base64,") for src in images)
    # metric, effect, latency, traffic, confusion per experiment; the shadow one also has
    # its predictions per model (report/plots.py)
    assert len(images) == 2 * 5 + 1
    # The verdicts and their criteria are there.
    assert 'class="decision promote"' in html
    for a in analyses:
        assert f'class="decision {a.decision}"' in html
        for c in a.criteria:
            assert c.name in html
    assert "McNemar" in html and "asymptotic_cs" in html
