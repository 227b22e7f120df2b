"""``arbiter demo --scenario mixed``: the closed loop on a table that looks real.

The drift scenario (:mod:`arbiter.demo.drift_scenario`) runs the loop on eight clean numeric
columns. This one runs the same loop on :func:`arbiter.demo.mixed_data.make_accounts`: numbers,
categorical strings (merchant category, country, device), gaps (one column missing not at
random), a free-text customer note and a rare label (~5 %). The gateway serves and logs the
raw rows, strings and nulls as the callers send them.

1. Train a champion on the reference month: a scikit-learn Pipeline whose ColumnTransformer
   imputes (numbers: median plus a missing indicator; strings: a ``missing`` category),
   one-hot encodes the categoricals and TF-IDF encodes the note, in front of a class-weighted
   logistic regression. Register it as ``champion`` with a signature whose string columns are
   ``string`` and whose gappy columns are optional, and with its drift reference profile.
2. Start the gateway with a shadow experiment (the loop's online test mirrors traffic to the
   version ``challenger`` points at).
3. Send labelled raw rows: the reference month, then a drifted month (a merchant category the
   champion never saw, a jump in the income missing rate, a new scam vocabulary in the notes,
   larger amounts) on which the champion misses frauds.
4. Run the loop in-process (:func:`arbiter.loop.run_cycle`): drift on the drifted window →
   retrain (the loop's own retrain, on part of the reference month plus the labelled traffic)
   → offline gate on a drifted holdout → the candidate shadows; send drifted, labelled traffic
   in rounds, running the cycle again after each, until the online test decides → promote.
5. Write the drift report and the shadow-test analysis (HTML) to HOME/reports/.

The traffic, waiting and reporting helpers are the drift scenario's: the two scenarios differ
in their data and their champion, not in how the loop is driven.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from arbiter.config import (
    DecisionConfig,
    HomeConfig,
    ModelConfig,
    ShadowExperimentConfig,
    dump_config,
)
from arbiter.demo.drift_scenario import (
    EXPERIMENT,
    LABEL,
    DriftDemoOptions,
    _analysis_report,
    _digest,
    _drift_check,
    _drift_report,
    _Narrator,
    _send,
    _wait_for_champion,
    _wait_for_log,
    _wait_for_shadows_done,
)
from arbiter.demo.run import MODEL, prepare_home
from arbiter.demo.traffic import send_until, wait_for_arms_loaded

if TYPE_CHECKING:
    import pandas as pd

    from arbiter.demo.mixed_data import AccountData
    from arbiter.home import Home
    from arbiter.loop import LoopRun


@dataclass(frozen=True)
class MixedDemoOptions:
    """Sizes of the mixed scenario (the defaults run in about 1-2 minutes on 2 cores).

    The fields mean what they mean in :class:`~arbiter.demo.drift_scenario.DriftDemoOptions`;
    ``shift`` is :func:`~arbiter.demo.mixed_data.make_accounts`' drift strength. The label is
    rare (~5 %), so the samples are larger than the numeric scenario's.
    """

    requests: int = 1_500
    online_requests: int = 1_000
    max_online_rounds: int = 8
    online_timeout_s: float = 900.0
    load_timeout_s: float = 300.0
    train_rows: int = 20_000
    holdout_rows: int = 5_000
    retrain_rows: int = 8_000
    shift: float = 1.0
    trials: int = 4
    cv: int = 3
    search: str = "sklearn"
    min_sample_per_arm: int = 800
    concurrency: int = 16
    label_batch: int = 250
    seed: int = 7
    shadow_executor: Literal["process", "thread"] = "process"

    def as_drift_options(self) -> DriftDemoOptions:
        """The same sizes in the shape the shared traffic and config helpers read."""
        return DriftDemoOptions(
            **{f: getattr(self, f) for f in DriftDemoOptions.__dataclass_fields__}
        )


@dataclass(frozen=True)
class _Rows:
    """Rows as a caller sends them: JSON values (``None`` for a gap), a user and a label."""

    features: pd.DataFrame
    users: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def json_rows(data: AccountData) -> _Rows:
    """The model's columns of ``data`` with every gap as ``None`` (JSON ``null``)."""
    frame = data.model_inputs().astype(object)
    return _Rows(frame.where(frame.notna(), None), data.users, data.labels)


def write_mixed_config(home: Home, options: MixedDemoOptions) -> HomeConfig:
    """The drift scenario's shadow experiment, judged on ROC AUC (as the offline gate).

    With a ~5 % label the default quality metric would be log loss; but both models are
    class-weighted (the champion here, every family of ``arbiter retrain`` by default), so
    their probabilities are deliberately not calibrated and log loss compares two weightings
    (in a test run it stayed undecided for 4,800 labelled rows). Accuracy depends on where
    each weighting puts the threshold (+13 points for a boosted candidate in one run, -6 for
    a linear one in another, both better by AUC). ROC AUC ranks the rows, as the gate does.
    """
    config = HomeConfig.model_validate(
        {
            "registry": {"poll_interval_s": 1.0},
            "events": {"flush_interval_s": 0.2},
            "models": {
                MODEL: ModelConfig(
                    metrics={"roc_auc": {"label_metric": "roc_auc", "positive": 1}},
                    experiment=ShadowExperimentConfig(
                        name=EXPERIMENT,
                        unit_field="user_id",
                        shadow_sample_rate=1.0,
                        shadow_max_in_flight=options.concurrency,
                        shadow_executor=options.shadow_executor,
                    ),
                    decision=DecisionConfig(
                        min_sample_per_arm=options.min_sample_per_arm,
                        primary_metric="roc_auc",
                    ),
                ).model_dump()
            },
        }
    )
    home.config_path.write_text(dump_config(config), encoding="utf-8")
    return config


# --- the champion ----------------------------------------------------------------------------


def category_values(x: Any) -> np.ndarray:
    """A categorical block as strings, every gap (``None`` or NaN) the category ``missing``.

    The gateway hands a pyfunc model ``None`` for a null string (and a column of nothing but
    ``None`` is an object column pandas does not see as missing), training data has NaN: both
    must read the same, so the pipeline maps them itself rather than trust an imputer.
    """
    import pandas as pd

    arr = np.asarray(x, dtype=object)
    return np.where(pd.isna(arr), "missing", arr).astype(str)


def text_values(x: Any) -> np.ndarray:
    """One document per row of a text column; a gap is the empty document."""
    import pandas as pd

    arr = np.asarray(x, dtype=object).ravel()
    return np.where(pd.isna(arr), "", arr).astype(str)


def train_mixed_champion(x: pd.DataFrame, y: np.ndarray, *, seed: int = 0) -> Any:
    """A pipeline on raw columns: impute, one-hot, TF-IDF, class-weighted logistic regression.

    Column kinds come from :func:`arbiter.column_kinds.column_kinds`, the rule retraining and
    drift use. The note's TF-IDF vocabulary is the reference month's: words that appear later
    (the drifted scam vocabulary) are unknown to it, as a new merchant category is to the
    one-hot encoder (``handle_unknown="ignore"``).
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    from arbiter.column_kinds import column_kinds

    kinds = column_kinds(x)
    numeric = [c for c, k in kinds.items() if k == "numeric"]
    categorical = [c for c, k in kinds.items() if k == "categorical"]
    parts: list[tuple[str, Any, Any]] = [
        (
            "numeric",
            make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()),
            numeric,
        ),
        (
            "categorical",
            make_pipeline(
                FunctionTransformer(category_values),
                OneHotEncoder(handle_unknown="ignore", min_frequency=10),
            ),
            categorical,
        ),
    ]
    for column in (c for c, k in kinds.items() if k == "text"):
        tfidf = TfidfVectorizer(min_df=5, sublinear_tf=True)
        parts.append(
            (f"text_{column}", make_pipeline(FunctionTransformer(text_values), tfidf), column)
        )
    model = Pipeline(
        [
            ("columns", ColumnTransformer(parts)),
            (
                "classifier",
                LogisticRegression(max_iter=2_000, class_weight="balanced", random_state=seed),
            ),
        ]
    )
    return model.fit(x, y)


def signature_example(x: pd.DataFrame, *, rows: int = 5) -> pd.DataFrame:
    """A few rows of ``x`` in which every column that has a gap in ``x`` has one too.

    The registered signature is inferred from this example: a column with a null in it
    becomes optional (``required=False``), so the gateway accepts a null where the training
    data had gaps and refuses one where it never did.
    """
    picked = list(range(min(rows, len(x))))
    for column in x.columns[x.isna().any().to_numpy()]:
        picked.append(int(np.flatnonzero(x[column].isna().to_numpy())[0]))
    return x.iloc[sorted(set(picked))].reset_index(drop=True)


def _register_champion(home: Home, options: MixedDemoOptions) -> tuple[str, Path, float]:
    """Train and register the champion with its profile; write part of its data for the loop.

    Returns the version, the training file the loop retrains on and the champion's ROC AUC on
    a fresh reference sample (what "good before the drift" means).
    """
    from sklearn.metrics import roc_auc_score

    from arbiter.demo.mixed_data import make_accounts
    from arbiter.drift import build_profile
    from arbiter.registry import registry_for_home
    from arbiter.registry.profiles import log_profile

    train = make_accounts(options.train_rows, seed=options.seed)
    x = train.model_inputs()
    champion = train_mixed_champion(x, train.labels, seed=options.seed)
    registry = registry_for_home(home.root)
    version = registry.log_sklearn_model(
        MODEL,
        champion,
        signature_example(x),
        aliases=("champion",),
        tags={"arbiter.role": "champion"},
    )
    scores = champion.predict_proba(x)[:, 1]
    log_profile(registry.tracking_uri, MODEL, version, build_profile(x, prediction=scores))
    check = make_accounts(5_000, seed=options.seed + 300)
    auc = float(roc_auc_score(check.labels, champion.predict_proba(check.model_inputs())[:, 1]))
    path = home.root / "data" / "accounts-reference.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    n = options.retrain_rows
    x.head(n).assign(**{LABEL: train.labels[:n]}).to_parquet(path, index=False)
    return str(version), path, auc


def _write_holdout(home: Home, options: MixedDemoOptions) -> Path:
    from arbiter.demo.mixed_data import make_accounts

    data = make_accounts(options.holdout_rows, seed=options.seed + 100, shift=options.shift)
    path = home.root / "data" / "accounts-holdout-drifted.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    data.model_inputs().assign(**{LABEL: data.labels}).to_parquet(path, index=False)
    return path


def drift_columns(result: Any) -> list[dict[str, Any]]:
    """Per column of a drift check: kind, method, statistic, verdict, and what moved.

    ``unseen`` lists categories the reference never had (with their share of the served
    rows); ``signals`` the column's other drift signals (missing rate, text length, share of
    words outside the reference vocabulary) that fired.
    """
    from arbiter.stats import finite_or_none

    out = []
    for f in result.features:
        signals = {
            s.name: {
                "reference": finite_or_none(s.reference),
                "current": finite_or_none(s.current),
                "drifted": bool(s.drifted),
            }
            for s in getattr(f, "signals", ())
        }
        out.append(
            {
                "column": f.column,
                "kind": f.kind,
                "method": f.method,
                "statistic": finite_or_none(f.statistic),
                "drifted": bool(f.drifted),
                "unseen": [
                    {"category": c, "share": round(float(v), 4)}
                    for c, v in getattr(f, "unseen", ())
                ],
                "signals": signals,
            }
        )
    return out


def _print_drift_columns(
    console: Any, columns: list[dict[str, Any]], kinds: dict[str, str]
) -> None:
    """The drift check per column: what drifted, by which test or signal, and new categories."""
    from rich.table import Table

    from arbiter.report.format import format_number

    table = Table(show_header=True, header_style="bold", title="drift per column")
    for col in ("column", "kind", "test", "statistic", "drifted", "what moved"):
        table.add_column(col, justify="right" if col == "statistic" else "left")
    for c in columns:
        moved = [f"new: {u['category']} ({u['share']:.0%})" for u in c["unseen"]]
        moved += [
            f"{name} {format_number(v['reference'], digits=3)} → "
            f"{format_number(v['current'], digits=3)}"
            for name, v in c["signals"].items()
            if v["drifted"]
        ]
        table.add_row(
            c["column"],
            kinds.get(c["column"], c["kind"]),
            c["method"],
            format_number(c["statistic"], digits=3),
            "[bold red]yes[/]" if c["drifted"] else "no",
            "; ".join(moved),
        )
    console.print(table)


# --- the scenario ----------------------------------------------------------------------------


def run_mixed_demo(
    home_dir: Path, options: MixedDemoOptions | None = None, *, console: Any = None
) -> dict[str, Any]:
    """Run the mixed scenario; return a JSON-safe summary.

    Parameters
    ----------
    home_dir : path
        Demo home; created, or wiped if an earlier demo created it.
    options : MixedDemoOptions, optional
        Sizes (tests pass smaller ones).
    console : rich.console.Console, optional
        Where the steps are printed.

    Returns
    -------
    dict
        As :func:`arbiter.demo.drift_scenario.run_drift_demo`'s, plus ``data`` (the table's
        columns and kinds, its label rate and gaps) and ``champion_auc``.
    """
    from rich.console import Console

    from arbiter.column_kinds import column_kinds
    from arbiter.demo.mixed_data import make_accounts
    from arbiter.events import Scope
    from arbiter.events.location import open_event_store
    from arbiter.gateway.app import create_app
    from arbiter.gateway.server import ServerThread
    from arbiter.loop import CycleStore, LoopOptions, run_cycle
    from arbiter.registry import registry_for_home

    options = options or MixedDemoOptions()
    shared = options.as_drift_options()
    console = console or Console()
    started = time.perf_counter()
    home = prepare_home(home_dir)
    config = write_mixed_config(home, options)
    console.print(f"[bold]arbiter demo --scenario mixed[/bold] in {home.root}")

    sample = make_accounts(2_000, seed=options.seed)
    kinds = column_kinds(sample.model_inputs())
    gaps = sample.model_inputs().isna().mean()
    data_summary = {
        "kinds": kinds,
        "label_rate": round(float(sample.labels.mean()), 4),
        "missing_rate": {c: round(float(v), 4) for c, v in gaps.items() if v > 0},
    }
    by_kind = {k: [c for c, v in kinds.items() if v == k] for k in ("numeric", "categorical")}
    console.print(
        f"accounts table: {len(by_kind['numeric'])} numeric, "
        f"{len(by_kind['categorical'])} categorical ({', '.join(by_kind['categorical'])}), "
        f"text ({', '.join(c for c, v in kinds.items() if v == 'text')}); "
        f"gaps in {', '.join(f'{c} {v:.0%}' for c, v in data_summary['missing_rate'].items())}; "
        f"label rate {data_summary['label_rate']:.1%}"
    )

    with console.status("Training the champion on the reference month…"):
        champion, train_file, champion_auc = _register_champion(home, options)
        holdout = _write_holdout(home, options)
    console.print(
        f"champion [bold]v{champion}[/] (impute + one-hot + TF-IDF + logistic regression, "
        f"{options.train_rows:,} rows, ROC AUC {champion_auc:.3f} on fresh reference rows) "
        f"registered with its drift reference profile; drifted holdout: {holdout}"
    )

    store = open_event_store(home)
    scope = Scope(MODEL)
    served_sql = f"SELECT count(*) FROM labeled WHERE {scope.where()} AND role = 'served' "
    served_sql += "AND label IS NOT NULL"
    shadow_sql = f"SELECT count(*) FROM shadowed WHERE {scope.where()} AND version = $version"
    narrator = _Narrator(console, [])
    steps = narrator.steps()
    traffic: dict[str, Any] = {"online": []}
    sent = 0
    with ServerThread(create_app(home, config=config)) as server:
        console.print(f"gateway on {server.url} (shadow experiment {EXPERIMENT!r})")
        before = json_rows(make_accounts(options.requests, seed=options.seed + 1))
        traffic["before_shift"] = _send(
            console, server.url, before, "raw rows, reference month", shared
        )
        after = json_rows(
            make_accounts(options.requests, seed=options.seed + 2, shift=options.shift)
        )
        traffic["after_shift"] = _send(
            console, server.url, after, f"raw rows, drifted month ({options.shift:g})", shared
        )
        sent += 2 * options.requests
        _wait_for_log(store, served_sql, scope.params, sent)

        loop_options = LoopOptions(
            data=train_file,
            label=LABEL,
            holdout=holdout,
            traffic_window="1h",
            drift_window=f"{options.requests} rows",
            trials=options.trials,
            cv=options.cv,
            seed=options.seed,
            search=options.search,
        )
        console.print("[bold]closed loop[/]: drift → retrain → gate → shadow → online → promote")
        run: LoopRun = run_cycle(home.root, MODEL, loop_options, steps=steps)
        candidate = run.record.candidate_version
        if not run.record.finished and candidate is not None:
            loaded = {"challenger": candidate}
            with console.status(f"Waiting for the gateway's shadow workers to load v{candidate}…"):
                wait_for_arms_loaded(
                    server.url, MODEL, versions=loaded, shadow=True,
                    timeout_s=options.load_timeout_s,
                )  # fmt: skip

            def online_round(start: int, n: int) -> dict[str, Any]:
                nonlocal sent
                i = len(traffic["online"])
                wait_for_arms_loaded(
                    server.url, MODEL, versions=loaded, shadow=True,
                    timeout_s=options.load_timeout_s,
                )  # fmt: skip
                data = make_accounts(n, seed=options.seed + 10 + i, shift=options.shift)
                what = f"shadow test round {i + 1} (v{candidate})"
                result = _send(console, server.url, json_rows(data), what, shared)
                traffic["online"].append(result)
                sent += n
                return result

            def decided() -> bool:
                nonlocal run
                _wait_for_log(store, served_sql, scope.params, sent)
                _wait_for_shadows_done(server.url)
                n = sum(r["labels"] for r in traffic["online"])
                _wait_for_log(store, shadow_sql, {**scope.params, "version": candidate}, n)
                run = run_cycle(home.root, MODEL, steps=steps)
                return run.record.finished

            rounds = send_until(
                online_round,
                decided,
                round_size=options.online_requests,
                max_requests=options.online_requests * options.max_online_rounds,
                timeout_s=options.online_timeout_s,
            )
            traffic["online_rounds"] = {
                "rounds": rounds.rounds,
                "requests": rounds.sent,
                "decided": rounds.reached,
                "seconds": rounds.seconds,
            }
        promoted = run.record.verdict == "promoted" and candidate is not None
        if promoted and _wait_for_champion(server.url, str(candidate)):
            console.print(f"the gateway now serves [bold]v{candidate}[/] as champion")

    record = run.record
    if not record.finished:
        console.print(
            f"[yellow]no verdict after {len(traffic['online'])} rounds of online traffic; "
            f"`arbiter loop run --home {home.root} --model {MODEL}` continues the cycle[/]"
        )
    with console.status("Writing the drift and experiment reports…"):
        checked = _drift_check(home, record)
        drift_html = _drift_report(home, record, checked)
        analysis_html, analysis = _analysis_report(home, record)
    columns = [] if checked is None else drift_columns(checked[0])
    if columns:
        _print_drift_columns(console, columns, kinds)

    aliases = registry_for_home(home.root).aliases(MODEL)
    decision_record = CycleStore(home.root).path(record.cycle_id)
    digest = _digest(record)
    digest["drift"]["columns"] = columns
    return {
        "scenario": "mixed",
        "home": str(home.root),
        "seconds": round(time.perf_counter() - started, 1),
        "data": data_summary,
        "champion_auc": round(champion_auc, 4),
        "status": record.status,
        "verdict": record.verdict,
        "reason": record.reason,
        "versions": {
            "champion_before": champion,
            "candidate": record.candidate_version,
            "champion_after": aliases.get("champion"),
            "aliases": aliases,
        },
        "traffic": traffic,
        "steps": narrator.events,
        **digest,
        "reports": {
            "drift_html": None if drift_html is None else str(drift_html),
            "analysis_html": None if analysis_html is None else str(analysis_html),
        },
        "decision_record": str(decision_record),
        "cycle": record.to_dict(),
        "_analysis": analysis,  # for printing; dropped before JSON output
    }


__all__ = [
    "MixedDemoOptions",
    "category_values",
    "drift_columns",
    "json_rows",
    "run_mixed_demo",
    "signature_example",
    "text_values",
    "train_mixed_champion",
    "write_mixed_config",
]
