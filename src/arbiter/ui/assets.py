"""Where the dashboard's third-party scripts come from: installed packages, never a CDN.

Plotly's browser bundle ships inside the ``plotly`` Python wheel
(``plotly/package_data/plotly.min.js``, MIT licence in the wheel's metadata), so it is
installed with arbiter and versioned by pip; htmx is vendored under ``static/vendor/htmx``
from the npm package ``htmx.org`` with its licence (``SOURCE.txt`` says how to update it).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path

from arbiter.errors import ConfigError


@cache
def plotly_js() -> Path:
    """The path of ``plotly.min.js`` inside the installed ``plotly`` package."""
    path = Path(str(files("plotly") / "package_data" / "plotly.min.js"))
    if not path.is_file():
        raise ConfigError(
            f"plotly.min.js is missing from the plotly package ({path}); "
            "reinstall it: pip install --force-reinstall 'plotly>=6'"
        )
    return path


__all__ = ["plotly_js"]
