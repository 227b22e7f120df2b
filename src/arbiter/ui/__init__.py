"""The web dashboard (``arbiter ui``): pages over a home's registry and event store.

* :mod:`~arbiter.ui.views`: what each page shows, from the analyses, the canary service,
  the alias history, drift checks and the loop's records (the same functions as the CLI);
* :mod:`~arbiter.ui.figures`: those numbers as Plotly chart specifications;
* :mod:`~arbiter.ui.app`: the Starlette app (Jinja2 templates, htmx live fragments, JSON
  views, the canary actions forwarded to the gateway's admin API);
* :mod:`~arbiter.ui.assets`: the browser libraries, served from installed packages.

Presentation and shell at once, like the gateway: it imports the analysis and registry
layers and is imported only by the CLI.
"""

from __future__ import annotations

from arbiter.ui.app import create_ui_app

__all__ = ["create_ui_app"]
