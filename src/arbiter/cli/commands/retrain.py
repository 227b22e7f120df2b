"""``arbiter retrain``: search a model space with Optuna and register the best as challenger."""

from __future__ import annotations

from pathlib import Path

import typer

from arbiter.cli.options import HomeOption, JsonOption, ModelOption

# Shared with `arbiter loop run|start`, which pass them to the loop's retrain step.
CategoricalOption = typer.Option(
    None,
    "--categorical",
    help="Encode this column as categories (repeatable). By default string and boolean "
    "columns are categorical unless their values read like sentences.",
)
TextOption = typer.Option(
    None,
    "--text",
    help="Encode this column as free text (TF-IDF; repeatable). By default a string column "
    "whose median value has 3 or more words.",
)
TimeColumnOption = typer.Option(
    None,
    "--time-column",
    help="Column ordering the rows in time (dates or numbers): validate on the future, "
    "train on the past (time-series folds). The column is not a feature.",
)


def retrain(
    model: str = ModelOption,
    home: Path = HomeOption,
    data: Path = typer.Option(..., "--data", "-d", help="Training data (.csv or .parquet)."),
    label: str = typer.Option(..., "--label", "-l", help="Column of DATA with the labels."),
    trials: int = typer.Option(20, "--trials", "-n", min=1, help="Number of Optuna trials."),
    timeout: float = typer.Option(
        None, "--timeout", help="Stop the search after this many seconds."
    ),
    include_traffic: str = typer.Option(
        None,
        "--include-traffic",
        help="Also train on labelled served traffic of MODEL from this period (7d, 1h30m) "
        "or its most recent rows ('5000 rows').",
    ),
    search: str = typer.Option(
        "all",
        "--search",
        help="Model space: sklearn (linear + histogram gradient boosting), lightgbm, xgboost, "
        "or all (every family installed; xgboost only with the arbiter[xgboost] extra).",
    ),
    metric: str = typer.Option(
        None,
        "--metric",
        help="scikit-learn scorer (default roc_auc; neg_root_mean_squared_error for regression).",
    ),
    cv: int = typer.Option(5, "--cv", min=2, help="Cross-validation folds."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampler, folds and estimators."),
    alias: str = typer.Option(
        None, "--alias", help="Alias for the new version (default: the configured challenger)."
    ),
    storage: str = typer.Option(
        None,
        "--storage",
        help="Share the search through this Optuna storage: postgresql://user@host/db (or any "
        "SQLAlchemy URL) for several hosts, or a journal file path. --trials is then the "
        "study's total; the same command on another host joins the same study.",
    ),
    study: str = typer.Option(
        None,
        "--study",
        help="Name of the shared study (default: derived from MODEL, DATA and the settings, "
        "so identical commands on other hosts join it; pass a new name to start over).",
    ),
    workers: int = typer.Option(
        1, "--workers", "-w", min=1, help="Processes on this host working on the search."
    ),
    categorical: list[str] = CategoricalOption,
    text: list[str] = TextOption,
    time_column: str = TimeColumnOption,
    class_weights: bool = typer.Option(
        True,
        "--class-weights/--no-class-weights",
        help="Weigh classes inversely to their frequency (a rare positive class counts).",
    ),
    tune_threshold: bool = typer.Option(
        False,
        "--tune-threshold",
        help="Binary classification: tune the decision threshold of the registered model for "
        "--threshold-metric (or --metric); the served predict applies it.",
    ),
    threshold_metric: str = typer.Option(
        None,
        "--threshold-metric",
        help="Scorer the threshold is tuned for (f1, balanced_accuracy, ...); implies "
        "--tune-threshold.",
    ),
    search_rows: int = typer.Option(
        200_000,
        "--search-rows",
        min=0,
        help="Score the trials on at most this many rows (the most recent with "
        "--time-column, else a stratified sample); the best is refitted on every row. "
        "0: search on every row.",
    ),
    prune: bool = typer.Option(
        True,
        "--prune/--no-prune",
        help="Stop a trial after a fold whose running score is below the median of earlier "
        "trials at that fold (Optuna's MedianPruner; the first 5 trials run in full).",
    ),
    json_output: bool = JsonOption,
) -> None:
    """Train candidates with a seeded Optuna search, register the best as the challenger.

    DATA may be a real table: numeric, categorical and free-text columns with missing values.
    The registered model is a pipeline that encodes and imputes the raw columns (rows with
    gaps are kept, and counted in the summary), so the gateway serves raw rows.
    Every trial is logged as an MLflow run (child of one run per search). Trials are scored
    on at most --search-rows rows; the best model is refitted on all the data. Then run
    `arbiter gate` to compare it with the champion.
    With --storage and/or --workers N the trials are shared through an Optuna study: the
    process that creates the study registers the best trial, processes that join it (other
    hosts running the same command) only contribute trials. See docs/retrain-and-gate.md.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from arbiter.cli.output import console, err_console, print_json
    from arbiter.durations import parse_window
    from arbiter.errors import InvalidInputError
    from arbiter.events.location import event_log_exists, open_event_store
    from arbiter.home import Home
    from arbiter.redact import redact_uri
    from arbiter.registry import registry_for_home
    from arbiter.retrain import SPACES, TrialSummary, labelled_traffic
    from arbiter.retrain import retrain as run_retrain
    from arbiter.tables import read_table, split_label

    if search not in SPACES:
        raise InvalidInputError(
            f"--search must be one of {', '.join(SPACES)}, got {search!r}", field="--search"
        )
    h = Home.at(home)
    x, y = split_label(read_table(data, field="--data"), label, source=data, field="--label")
    features = [c for c in x.columns if c != time_column]
    traffic = None
    if include_traffic:
        window = parse_window(include_traffic, field="include_traffic")
        if event_log_exists(h):
            traffic = labelled_traffic(
                open_event_store(h),
                model,
                window=window.period,
                last=window.rows,
                features=features,
            )
    registry = registry_for_home(h.root)
    alias = alias or h.aliases(model)[1]
    # The bar goes to stderr so that --json output on stdout stays parseable.
    with Progress(
        TextColumn("[bold]search[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[best]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=json_output,
    ) as progress:
        task = progress.add_task("search", total=trials, best="")

        def on_trial(summary: TrialSummary) -> None:
            best = "" if summary.best_value is None else f"best {summary.best_value:.4f}"
            progress.update(task, completed=summary.n_finished, best=best)

        result = run_retrain(
            registry,
            model,
            x,
            y,
            traffic=traffic,
            search=search,  # type: ignore[arg-type]
            metric=metric,
            n_trials=trials,
            timeout=timeout,
            cv=cv,
            seed=seed,
            alias=alias,
            on_trial=on_trial,
            storage=storage,
            study_name=study,
            workers=workers,
            categorical=tuple(categorical or ()),
            text=tuple(text or ()),
            time_column=time_column,
            class_weights=class_weights,
            tune_threshold=threshold_metric or tune_threshold,
            search_rows=search_rows,
            prune=prune,
        )
    if json_output:
        print_json(result.to_dict())
        return
    if result.study:
        where = f" in {redact_uri(storage)}" if storage else ""
        console.print(f"study [bold]{result.study}[/bold]{where}", highlight=False)
    if result.joined:
        registered = f"v{result.version}" if result.version else "not yet"
        console.print(
            f"joined the study: it has {result.n_trials} finished trials, best "
            f"{result.metric} {result.best_score:.4f}; the host that created it registers "
            f"the best trial (registered: {registered})",
            highlight=False,
        )
        return
    console.print(
        f"registered [bold]{model}[/bold] v{result.version} as @{result.alias}: "
        f"{result.metric} {result.best_score:.4f} ± {result.best_score_std:.4f} "
        f"(best of {result.n_trials} trials, {result.n_rows} rows of which "
        f"{result.n_traffic_rows} from traffic, {result.duration:.1f} s)"
    )
    console.print(f"best parameters: {result.best_params}", highlight=False)
    pruned = f"; {result.n_pruned} trials pruned after their first folds" if result.n_pruned else ""
    console.print(result.search_note + pruned, highlight=False)
    if result.n_rows_with_gaps:
        gaps = ", ".join(f"{c} {n}" for c, n in result.missing.items())
        console.print(
            f"{result.n_rows_with_gaps} of {result.n_rows} rows had a missing value (kept, "
            f"imputed by the pipeline): {gaps}",
            highlight=False,
        )
    kinds = result.column_kinds
    encoded = {k: [c for c, v in kinds.items() if v == k] for k in ("categorical", "text")}
    if any(encoded.values()):
        console.print(
            "encoded as categories: "
            + (", ".join(encoded["categorical"]) or "-")
            + "; as text: "
            + (", ".join(encoded["text"]) or "-"),
            highlight=False,
        )
    if result.time_column:
        console.print(f"validated on the future: time-ordered folds by {result.time_column}")
    if result.threshold is not None:
        console.print(
            f"decision threshold {result.threshold:.4f} (tuned for {result.threshold_metric})",
            highlight=False,
        )
    console.print(f"search id {result.search_id}; next: arbiter gate --model {model} ...")
