"""``arbiter drift``: has the data drifted from the training data?

Two sources for the current data:

* files: ``arbiter drift --reference train.parquet --current today.csv`` (the reference may
  also be a saved profile JSON);
* the event log: ``arbiter drift --home DIR --model NAME [--window 1d | --last 5000]``,
  against the reference profile stored with the champion (or ``--version``) in MLflow.

``arbiter drift profile`` builds that profile from training data and stores it (or writes a
file). Methods and thresholds: docs/drift.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from arbiter.cli.options import EngineOption

app = typer.Typer(
    help="Data and prediction drift against the training data (docs/drift.md).",
    no_args_is_help=False,
    rich_markup_mode="rich",
)


def _parse_methods(items: list[str] | None) -> dict[str, str]:
    from arbiter.errors import InvalidInputError

    out: dict[str, str] = {}
    for item in items or []:
        column, sep, method = item.partition("=")
        if not sep or not column or not method:
            raise InvalidInputError(
                f"--method expects COLUMN=METHOD (e.g. age=psi), got {item!r}", field="method"
            )
        out[column.strip()] = method.strip().lower()
    return out


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(c.strip() for c in (text or "").split(",") if c.strip())


def _kinds(categorical: str | None, text: str | None) -> dict[str, str]:
    from arbiter.errors import InvalidInputError

    kinds = dict.fromkeys(_split(categorical), "categorical")
    both = [c for c in _split(text) if c in kinds]
    if both:
        raise InvalidInputError(
            f"columns given both as --categorical and --text: {', '.join(both)}", field="text"
        )
    kinds.update(dict.fromkeys(_split(text), "text"))
    return kinds


def _print_result(result: Any, header: str, *, wide: bool = False) -> None:
    from rich.console import Console

    from arbiter.report.drift import print_drift
    from arbiter.report.terminal import WIDE

    WIDE.set(wide)
    print_drift(Console(), result, header)


def _champion_version(registry: Any, model: str, alias: str) -> str:
    from arbiter.errors import NotFoundError

    aliases = registry.aliases(model)
    if alias not in aliases:
        raise NotFoundError(
            f"model {model!r} has no {alias!r} alias (its champion); pass --version to pick "
            "the version whose reference profile to use"
        )
    return aliases[alias]


@app.callback(invoke_without_command=True)
def drift(
    ctx: typer.Context,
    reference: Path = typer.Option(
        None, "--reference", "-r", help="Reference data (.csv/.parquet) or a profile .json."
    ),
    current: Path = typer.Option(None, "--current", "-c", help="Current data (.csv/.parquet)."),
    home: Path = typer.Option(
        None,
        "--home",
        help="Arbiter home: read the current window from its event log.",
        envvar="ARBITER_HOME",
    ),
    model: str = typer.Option(None, "--model", "-m", help="Registered model (with --home)."),
    version: str = typer.Option(
        None, "--version", help="Model version whose profile to use (default: the champion)."
    ),
    window: str = typer.Option(
        None,
        "--window",
        "-w",
        help="Window of served traffic: a period (30m, 1h30m, 1d) or recent rows ('5000 rows').",
    ),
    last: int = typer.Option(None, "--last", help="The most recent N served rows."),
    methods: list[str] = typer.Option(
        None, "--method", help="Per-column method override COLUMN=ks|psi|chi2|js|wasserstein."
    ),
    categorical: str = typer.Option(
        None, "--categorical", help="Comma-separated columns to treat as categorical (files)."
    ),
    text: str = typer.Option(
        None, "--text", help="Comma-separated columns to treat as free text (files)."
    ),
    prediction_column: str = typer.Option(
        None, "--prediction-column", help="Column holding model outputs (files): prediction drift."
    ),
    bins: int = typer.Option(10, "--bins", help="Reference-quantile bins for PSI."),
    alpha: float = typer.Option(0.01, "--alpha", help="Family-wise level (Holm)."),
    correction: str = typer.Option("holm", "--correction", help="holm, bh or none."),
    share: float = typer.Option(0.5, "--share", help="Dataset drift when this share drifts."),
    html: Path = typer.Option(None, "--html", help="Write a self-contained HTML report here."),
    json_output: bool = typer.Option(
        False, "--json", help="Print machine-readable JSON instead of tables."
    ),
    wide: bool = typer.Option(
        False, "--wide", help="Print every table column, however wide the terminal."
    ),
    engine: str = EngineOption,
) -> None:
    """Compare current data with the reference, per feature and for the whole table.

    Files: --reference REF --current CUR. Event log: --home DIR --model NAME [--window 1d |
    --last N] [--version V]. Exit code 0 whether or not drift is found; read `drifted`.
    """
    if ctx.invoked_subcommand is not None:
        return
    from arbiter.cli.output import print_json
    from arbiter.drift import DriftConfig, ReferenceProfile, check_drift
    from arbiter.errors import InvalidInputError
    from arbiter.tables import read_table

    config_kwargs: dict[str, Any] = {
        "methods": _parse_methods(methods),
        "bins": bins,
        "alpha": alpha,
        "correction": correction,
        "share": share,
        "kinds": _kinds(categorical, text),
        "prediction_column": prediction_column,
    }
    meta: dict[str, Any] = {}
    ref_pred = cur_pred = None
    if reference is not None:
        if current is None:
            raise InvalidInputError("--reference needs --current", field="current")
        if reference.suffix.lower() == ".json":
            from arbiter.errors import NotFoundError

            if not reference.exists():
                raise NotFoundError(f"file not found: {reference}")
            ref: Any = ReferenceProfile.from_json(reference.read_bytes())
        else:
            ref = read_table(reference, field="reference")
        cur: Any = read_table(current, field="current")
        title = f"{reference.name} → {current.name}"
        meta = {"reference": str(reference), "current": str(current)}
    elif model is not None:
        ref, cur, ref_pred, cur_pred, title, meta = _from_event_log(
            home or Path("./arbiter-home"), model, version, window, last, engine
        )
        config_kwargs["columns"] = ref.names
    else:
        raise InvalidInputError(
            "give --reference and --current (files), or --model with --home (event log)",
            field="reference",
        )
    config = DriftConfig(**config_kwargs)
    result = check_drift(
        ref, cur, config, reference_prediction=ref_pred, current_prediction=cur_pred
    )
    path = None
    if html is not None:
        from arbiter.report.drift import write_drift_html

        subtitle = ", ".join(f"{k}: {v}" for k, v in meta.items())
        path = write_drift_html(result, html, title=title, subtitle=subtitle)
    if json_output:
        print_json({**result.to_dict(), "source": meta, "html_file": path and str(path)})
        return
    _print_result(result, title, wide=wide)
    if path is not None:
        typer.echo(f"\nHTML report: {path}")


def _from_event_log(
    home: Path,
    model: str,
    version: str | None,
    window: str | None,
    last: int | None,
    engine: str | None = None,
) -> tuple[Any, Any, Any, Any, str, dict[str, Any]]:
    from arbiter.durations import parse_window
    from arbiter.errors import NotFoundError
    from arbiter.events.engines import open_for_home
    from arbiter.events.window import read_window
    from arbiter.home import Home
    from arbiter.registry import registry_for_home
    from arbiter.registry.profiles import load_profile

    h = Home.at(home)
    registry = registry_for_home(h.root)
    version = version or _champion_version(registry, model, h.aliases(model)[0])
    profile = load_profile(
        registry.tracking_uri, model, version, registry_uri=registry.registry_uri
    )
    spec = parse_window(window if window or last is not None else "1d", field="window")
    rows = min((n for n in (spec.rows, last) if n is not None), default=None)
    columns = {c.name: c.kind for c in profile.columns}
    with open_for_home(h, engine) as con:
        w = read_window(con, model, columns, window=spec.period, last=rows, version=version)
    if w.n == 0:
        raise NotFoundError(
            f"no served rows of {model!r} in the window ({window or ''}{last or ''}); "
            "widen --window or use --last"
        )
    cur_pred = None
    if profile.prediction is not None:
        cur_pred = w.scores if profile.prediction.kind == "numeric" else w.predictions
    meta = {
        "home": str(h.root),
        "model": model,
        "version": version,
        "window": window,
        "last": last,
        "rows": w.n,
        "start": w.start and w.start.isoformat(),
        "end": w.end and w.end.isoformat(),
    }
    return profile, w.features, None, cur_pred, f"{model} v{version}", meta


@app.command("profile")
def profile(
    data: Path = typer.Option(..., "--data", "-d", help="Training data (.csv/.parquet)."),
    out: Path = typer.Option(None, "--out", "-o", help="Write the profile JSON here."),
    home: Path = typer.Option(
        None,
        "--home",
        help="Arbiter home whose MLflow store gets the profile.",
        envvar="ARBITER_HOME",
    ),
    model: str = typer.Option(None, "--model", "-m", help="Registered model to attach it to."),
    version: str = typer.Option(None, "--version", help="Model version to attach it to."),
    prediction_column: str = typer.Option(
        None, "--prediction-column", help="Column of model outputs on the training data."
    ),
    categorical: str = typer.Option(
        None, "--categorical", help="Comma-separated columns to treat as categorical."
    ),
    text: str = typer.Option(None, "--text", help="Comma-separated columns to treat as free text."),
    exclude: str = typer.Option(
        None, "--exclude", help="Comma-separated columns to leave out (e.g. the label)."
    ),
    bins: int = typer.Option(10, "--bins", help="Reference-quantile bins for PSI."),
    json_output: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Build the reference profile of training data; store it with a model version and/or a file.

    With --model and --version it is logged on the version's MLflow run
    (arbiter/reference_profile.json), where `arbiter drift --model` finds it.
    """
    from arbiter.cli.output import print_json
    from arbiter.drift import build_profile
    from arbiter.errors import InvalidInputError

    if out is None and model is None:
        raise InvalidInputError(
            "say where the profile goes: --out FILE and/or --model NAME --version V", field="out"
        )
    if model is not None and version is None:
        raise InvalidInputError("--model needs --version", field="version")
    from arbiter.tables import read_table

    frame = read_table(data, field="data")
    skip = set(_split(exclude))
    columns = [c for c in map(str, frame.columns) if c not in skip and c != prediction_column]
    kinds: dict[str, Any] = _kinds(categorical, text)
    metadata = {"source": str(data)}
    if model is not None:
        metadata.update(model=model, version=str(version))
    prof = build_profile(
        frame,
        prediction=prediction_column,
        columns=[*columns, *([prediction_column] if prediction_column else [])],
        kinds=kinds,
        bins=bins,
        metadata=metadata,
    )
    result: dict[str, Any] = {"columns": list(prof.names), "rows": len(frame)}
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(prof.to_json(), encoding="utf-8")
        result["file"] = str(out)
    if model is not None:
        from arbiter.registry import registry_for_home
        from arbiter.registry.profiles import log_profile

        registry = registry_for_home(home or Path("./arbiter-home"))
        result["artifact_uri"] = log_profile(
            registry.tracking_uri, model, str(version), prof, registry_uri=registry.registry_uri
        )
    if json_output:
        print_json(result)
        return
    typer.echo(f"profiled {len(prof.names)} columns of {len(frame):,} rows")
    for key in ("file", "artifact_uri"):
        if key in result:
            typer.echo(f"{key}: {result[key]}")
