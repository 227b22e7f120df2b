"""``arbiter stats``: calculators for analysts.

Thin wrappers over :mod:`arbiter.stats`: parse options, build sufficient statistics or arrays,
call one pure function, print its result as JSON (``--json``) or a Rich table. The statistics
modules (scipy, statsmodels) and pandas are imported inside the command bodies so that
``arbiter --help`` stays fast.

Options that take several values (``--successes``, ``--trials``, ``--counts``, ``--weights``,
``--current``) accept them space-separated (``--successes 10 20 30``), comma-separated
(``--successes 10,20,30``) or repeated (``--successes 10 --successes 20``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from arbiter.errors import InvalidInputError

app = typer.Typer(no_args_is_help=True)


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


class _MultiValueCommand(TyperCommand):
    """A command whose ``multiple=True`` options also take space- or comma-separated values.

    Click options take exactly one value per occurrence, so ``--successes 10 20`` would leave
    ``20`` as a stray argument. Before Click parses, this rewrites the argument list into the
    repeated form Click understands (``--successes 10 --successes 20``). A token continues the
    current option's values until the next token that looks like an option (starts with ``-``
    and is not a number).
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        multi = {
            opt
            for param in self.params
            if getattr(param, "multiple", False)
            for opt in getattr(param, "opts", ())
        }
        rewritten: list[str] = []
        current: str | None = None
        for token in args:
            name, eq, inline = token.partition("=")
            if token.startswith("-") and not _is_number(token):
                current = None
                if eq and name in multi:
                    rewritten.extend(_repeat(name, inline))
                    continue
                if token in multi:
                    current = token
                    # Keep a bare trailing ``--successes`` so Click reports the missing value.
                    rewritten.append(token)
                    continue
                rewritten.append(token)
            elif current is not None:
                values = _repeat(current, token)
                if rewritten and rewritten[-1] == current:
                    values = values[1:]  # the bare option token is already there
                rewritten.extend(values)
            else:
                rewritten.append(token)
        return super().parse_args(ctx, rewritten)


def _repeat(option: str, text: str) -> list[str]:
    out: list[str] = []
    for value in (v for v in text.split(",") if v.strip()):
        out.extend([option, value.strip()])
    return out


# --------------------------------------------------------------------------- output helpers


def _emit(
    data: dict[str, Any],
    *,
    as_json: bool,
    title: str,
    skip: tuple[str, ...] = (),
    notes: tuple[str, ...] = (),
) -> None:
    from arbiter.cli.output import console, print_json
    from arbiter.report.format import P_VALUE_COLUMNS, format_number, format_p_value

    if as_json:
        print_json(data)
        return
    from rich.table import Table

    table = Table(title=title, show_header=False)
    table.add_column("quantity", style="bold", no_wrap=True)
    table.add_column("value")
    for key, value in data.items():
        # "status ok" only says the calculation ran; another status says why it did not.
        if key not in skip and not (key == "status" and value == "ok"):
            shown = (
                format_p_value(value, missing="n/a")
                if key in P_VALUE_COLUMNS or key.endswith("p_value")
                else format_number(value, digits=6, missing="n/a")
            )
            table.add_row(key, shown)
    console.print(table)
    for note in notes:
        console.print(f"note: {note}", highlight=False)


def _interval_note(data: dict[str, Any]) -> tuple[str, ...]:
    """Why the absolute and the relative interval may disagree about 0, said when they do.

    They are two approximations, not one interval in two units: the absolute one is the
    Wald interval of b − a, the relative one the delta-method interval of b / a − 1 (the
    ratio's standard error). Near the edge of significance one can exclude 0 while the
    other does not; the test's p-value is what decides.
    """
    lo, hi = data.get("ci_low"), data.get("ci_high")
    rlo, rhi = data.get("relative_ci_low"), data.get("relative_ci_high")
    if None in (lo, hi, rlo, rhi):
        return ()
    if (lo > 0 or hi < 0) == (rlo > 0 or rhi < 0):
        return ()
    return (
        "the absolute interval (Wald, of b − a) and the relative one (delta method, of "
        "b / a − 1) are different approximations and disagree about 0 here, as they can "
        "near the edge of significance; the p-value decides (it is the pooled z-test's)",
    )


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
AlphaOption = Annotated[float, typer.Option(help="Significance level.")]
AlternativeOption = Annotated[
    str, typer.Option(help="two-sided, larger (b > a) or smaller (b < a).")
]


# --------------------------------------------------------------------------- proportions


@app.command(cls=_MultiValueCommand)
def proportions(
    successes: Annotated[
        list[int], typer.Option(help="Successes per arm, control first: --successes 10 20")
    ],
    trials: Annotated[list[int], typer.Option(help="Trials per arm: --trials 100 100")],
    alpha: AlphaOption = 0.05,
    alternative: AlternativeOption = "two-sided",
    json_output: JsonOption = False,
) -> None:
    """Compare conversion rates: z-test for two arms, chi-square + Marascuilo for three or more."""
    from arbiter.stats.proportions import k_proportion_test, two_proportion_test
    from arbiter.stats.sufficient import ProportionStatistic

    if len(successes) != len(trials):
        raise InvalidInputError(
            f"--successes has {len(successes)} values but --trials has {len(trials)}; "
            "give one of each per arm",
            field="--trials",
        )
    if len(successes) < 2:
        raise InvalidInputError("give at least two arms to compare", field="--successes")
    arms = [ProportionStatistic(n=n, successes=s) for s, n in zip(successes, trials, strict=True)]
    if len(arms) == 2:
        result = two_proportion_test(arms[0], arms[1], alpha=alpha, alternative=alternative)
        data = result.to_dict()
        _emit(
            data,
            as_json=json_output,
            title="Two-proportion test (b − a)",
            notes=_interval_note(data),
        )
        return
    if alternative != "two-sided":
        raise InvalidInputError(
            "--alternative applies to two arms only; the k-arm chi-square test is two-sided",
            field="--alternative",
        )
    k_result = k_proportion_test(arms, alpha=alpha)
    data = k_result.to_dict()
    if json_output:
        _emit(data, as_json=True, title="")
        return
    _emit(data, as_json=False, title="Chi-square test of k proportions", skip=("pairs",))
    from rich.table import Table

    from arbiter.cli.output import console
    from arbiter.report.format import format_number

    table = Table(title=f"Marascuilo pairwise comparisons (alpha={alpha})")
    for column in ("a", "b", "difference", "critical_value", "significant"):
        table.add_column(column)
    for pair in data["pairs"]:
        cells = [
            format_number(pair[c], digits=6, missing="n/a")
            for c in ("a", "b", "difference", "critical_value")
        ]
        table.add_row(*cells, "yes" if pair["significant"] else "no")
    console.print(table)


# --------------------------------------------------------------------------- sample size


@app.command("sample-size", cls=_MultiValueCommand)
def sample_size(
    mde: Annotated[
        float, typer.Option(help="Minimum detectable effect (absolute unless --relative).")
    ],
    baseline: Annotated[
        float | None,
        typer.Option(help="Control proportion, or control mean for --metric mean."),
    ] = None,
    relative: Annotated[bool, typer.Option("--relative", help="The mde is relative.")] = False,
    alpha: AlphaOption = 0.05,
    power: Annotated[float, typer.Option(help="Target power.")] = 0.8,
    alternative: AlternativeOption = "two-sided",
    metric: Annotated[str, typer.Option(help="proportion or mean.")] = "proportion",
    std: Annotated[float | None, typer.Option(help="Standard deviation (--metric mean).")] = None,
    variance: Annotated[
        str, typer.Option(help="Proportions: unpooled (default) or arcsine (Cohen's h).")
    ] = "unpooled",
    current: Annotated[
        list[int] | None,
        typer.Option(help="Units observed so far per arm, to report what remains."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Units per arm needed to detect an effect (two arms, equal split)."""
    from arbiter.stats.power import (
        remaining_sample_size,
        sample_size_means,
        sample_size_proportions,
    )

    if metric == "proportion":
        if baseline is None:
            raise InvalidInputError("--baseline is required for proportions", field="--baseline")
        result = sample_size_proportions(
            baseline, mde, relative=relative, alpha=alpha, power=power,
            alternative=alternative, variance=variance,
        )  # fmt: skip
    elif metric == "mean":
        if std is None:
            raise InvalidInputError("--std is required with --metric mean", field="--std")
        result = sample_size_means(
            mde, std, baseline=baseline, relative=relative, alpha=alpha, power=power,
            alternative=alternative,
        )  # fmt: skip
    else:
        raise InvalidInputError(
            f"--metric must be 'proportion' or 'mean', got {metric!r}", field="--metric"
        )
    data = result.to_dict()
    if current:
        progress = remaining_sample_size(result, current).to_dict()
        for key in ("current_n", "remaining_per_arm", "remaining_total", "fraction_complete"):
            data[key] = progress[key]
        data["progress_status"] = progress["status"]
    _emit(data, as_json=json_output, title="Sample size per arm")


# --------------------------------------------------------------------------- SRM


@app.command(cls=_MultiValueCommand)
def srm(
    counts: Annotated[list[int], typer.Option(help="Observed units per arm: --counts 5030 4970")],
    weights: Annotated[
        list[float] | None, typer.Option(help="Configured weights (default: equal split).")
    ] = None,
    threshold: Annotated[float, typer.Option(help="Alarm when p < threshold.")] = 0.001,
    json_output: JsonOption = False,
) -> None:
    """Check for sample-ratio mismatch (chi-square goodness of fit against the weights)."""
    from arbiter.stats.srm import srm_test

    result = srm_test(counts, weights or None, threshold=threshold)
    _emit(result.to_dict(), as_json=json_output, title="Sample-ratio mismatch check")


# --------------------------------------------------------------------------- compare

_TESTS = ("delong", "mcnemar", "bootstrap", "paired-t")
# sklearn-style names accepted for the built-in vectorised bootstrap metrics.
_METRIC_ALIASES = {
    "accuracy_score": "accuracy",
    "f1_score": "f1",
    "precision_score": "precision",
    "recall_score": "recall",
    "roc_auc_score": "roc_auc",
    "auc": "roc_auc",
    "mean_absolute_error": "mae",
    "mean_squared_error": "mse",
    "root_mean_squared_error": "rmse",
    "r2_score": "r2",
}
_LOSS_ALIASES = {
    None: "squared",
    "squared": "squared",
    "mse": "squared",
    "rmse": "squared",
    "absolute": "absolute",
    "mae": "absolute",
}


def _bootstrap_metric(name: str | None) -> Any:
    from arbiter.stats.paired import BOOTSTRAP_METRICS

    if name is None:
        raise InvalidInputError("--metric is required with --test bootstrap", field="--metric")
    key = _METRIC_ALIASES.get(name, name)
    if key in BOOTSTRAP_METRICS:
        return key
    import sklearn.metrics

    # Any other sklearn metric by name, e.g. balanced_accuracy_score (slower: not vectorised).
    for candidate in (name, f"{name}_score"):
        fn = getattr(sklearn.metrics, candidate, None)
        if callable(fn) and not candidate.startswith("_"):
            return fn
    raise InvalidInputError(
        f"unknown metric {name!r}; use one of {', '.join(sorted(BOOTSTRAP_METRICS))} "
        "or a sklearn.metrics function name",
        field="--metric",
    )


@app.command()
def compare(
    data: Annotated[Path, typer.Option(help="CSV or Parquet file with one row per example.")],
    label: Annotated[str, typer.Option(help="Column with the true label/target.")],
    a: Annotated[str, typer.Option("--a", help="Column of model A (baseline).")],
    b: Annotated[str, typer.Option("--b", help="Column of model B (challenger).")],
    test: Annotated[str, typer.Option(help="delong, mcnemar, bootstrap or paired-t.")],
    metric: Annotated[
        str | None,
        typer.Option(
            help="bootstrap: accuracy, roc_auc, log_loss, mae, rmse, f1...; "
            "paired-t: squared (default) or absolute loss."
        ),
    ] = None,
    alpha: AlphaOption = 0.05,
    n_resamples: Annotated[int, typer.Option(help="Bootstrap replicates.")] = 2000,
    bootstrap_method: Annotated[str, typer.Option(help="BCa or percentile.")] = "BCa",
    seed: Annotated[int | None, typer.Option(help="Bootstrap random seed.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Compare two models scored on the same rows of an offline dataset (paired tests).

    For mcnemar the --a/--b columns are predicted labels; for delong they are scores; for
    bootstrap whatever the metric takes; for paired-t regression predictions.
    """
    if test not in _TESTS:
        raise InvalidInputError(
            f"--test must be one of {', '.join(_TESTS)}; got {test!r}", field="--test"
        )
    from arbiter.tables import read_table

    frame = read_table(data, field="--data")
    columns = {"--label": label, "--a": a, "--b": b}
    for option, column in columns.items():
        if column not in frame.columns:
            raise InvalidInputError(
                f"column {column!r} (from {option}) is not in {data}; "
                f"available columns: {', '.join(map(str, frame.columns))}",
                field=option,
            )
    used = frame[[label, a, b]]
    n_missing = int(used.isna().any(axis=1).sum())
    if n_missing:
        raise InvalidInputError(
            f"{n_missing} rows of {data} have missing values in {label}, {a} or {b}; "
            "drop or fill them first",
            field="--data",
        )
    y, pa, pb = (used[c].to_numpy() for c in (label, a, b))

    from arbiter.stats import paired

    if test == "mcnemar":
        result = paired.mcnemar_test(y, pa, pb, alpha=alpha)
    elif test == "delong":
        result = paired.delong_test(y, pa, pb, alpha=alpha)
    elif test == "bootstrap":
        result = paired.paired_bootstrap(
            y, pa, pb, _bootstrap_metric(metric), n_resamples=n_resamples,
            method=bootstrap_method, alpha=alpha, random_state=seed,
        )  # fmt: skip
    else:
        if metric not in _LOSS_ALIASES:
            raise InvalidInputError(
                f"--metric for paired-t must be squared or absolute, got {metric!r}",
                field="--metric",
            )
        result = paired.paired_t_test(y, pa, pb, loss=_LOSS_ALIASES[metric], alpha=alpha)
    out = {"test": test, **result.to_dict()}
    _emit(out, as_json=json_output, title=f"Paired comparison ({test}): b − a")
