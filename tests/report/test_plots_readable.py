"""The HTML report's plots can be read (issue 17 item 10).

A linear latency axis let one slow shadow p99 flatten the champion's curve; the confusion
matrices' titles and labels were clipped; the SRM legend covered the bars; the shadow
traffic plot's caption spoke of a split its title said did not exist.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from arbiter.analysis import analyze_model
from arbiter.events import EventStore
from arbiter.report.plots import figure, latency_figure, plots, png, traffic_figure
from tests.report.test_render import _shadow_log


@pytest.fixture
def analyses(ab_log: Callable[..., EventStore], rng: np.random.Generator) -> dict[str, Any]:
    store = ab_log(1500, 1500, 0.80, 0.88)
    _shadow_log(store, rng, 800, 0.80, 0.86)
    with store.connect() as con:
        return {a.mode: a for a in analyze_model(con, "m")}


def _renderer(fig: Any) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    return FigureCanvasAgg(fig).get_renderer()


def test_latency_axis_is_logarithmic(analyses: dict[str, Any]) -> None:
    for a in analyses.values():
        fig = latency_figure(a)
        (ax,) = fig.axes
        assert ax.get_xscale() == "log"
        # Tick labels are plain numbers (0.5, 1, 2), not powers of ten.
        fig.draw(_renderer(fig))
        labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        assert labels and not any("10^" in t or "\\times" in t for t in labels), labels


def test_srm_legend_does_not_cover_the_bars(analyses: dict[str, Any]) -> None:
    fig = traffic_figure(analyses["ab"])
    renderer = _renderer(fig)
    fig.draw(renderer)
    (ax,) = fig.axes
    legend = ax.get_legend().get_window_extent(renderer)
    bars = [p.get_window_extent(renderer) for p in ax.patches]
    assert bars and not any(legend.overlaps(b) for b in bars)


def test_shadow_traffic_caption_and_title_agree(analyses: dict[str, Any]) -> None:
    shadow = analyses["shadow"]
    (plot,) = [p for p in plots(shadow) if "requests" in p.title or "traffic" in p.title]
    assert "split" not in plot.title
    assert "configured split" not in plot.caption and "no split" in plot.caption
    (ax,) = traffic_figure(shadow).axes
    assert "split" not in ax.get_title()


def test_png_keeps_what_is_drawn_outside_the_axes() -> None:
    """Titles and labels beyond the figure's edge are kept, not clipped: the saved image
    grows to include them (the confusion matrices' titles were cut off)."""
    from PIL import Image

    fig = figure(4.0, 3.0)
    ax = fig.add_subplot()
    ax.set_title("a title placed well above the axes", y=1.4)
    image = Image.open(io.BytesIO(base64.b64decode(png(fig))))
    assert image.height > 3.0 * fig.dpi


def test_confusion_matrix_titles_are_inside_the_image(analyses: dict[str, Any]) -> None:
    from PIL import Image

    (plot,) = [p for p in plots(analyses["ab"]) if p.title == "confusion matrices"]
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(plot.data))).convert("L"))
    # The top rows hold the titles ("champion", "challenger"), then white: the first
    # non-white row is below the image's edge, not at it (a clipped title starts at row 0).
    dark_rows = np.flatnonzero((image < 128).any(axis=1))
    assert dark_rows.size and dark_rows[0] > 0 and dark_rows[-1] < image.shape[0] - 1
