"""Validity suite of issue 15: decisions that hold their error rate on realistic traffic.

Every scenario simulates many experiments in which **nothing differs** (or a guardrail sits
exactly at its limit) and runs them through the functions the product runs, so a "promote"
or "rollback" is an error; the suite reports each error rate with its Monte-Carlo standard
error ``sqrt(r (1 − r) / runs)`` next to the nominal level.

Scenarios (names for ``--only``):

``abn_repeat_users``
    A/B/n with 4 equal arms and returning users (Pareto(1.2) activity: most users send one
    request, a few send hundreds; each user has an accuracy of their own, so a user's rows
    are correlated). Each arm's per-unit statistics go through
    :func:`arbiter.stats.verdict.pairwise_comparisons` and
    :func:`arbiter.stats.verdict.decide_multiarm` with the policy
    :func:`arbiter.analysis.policy.to_decision_policy` builds from the default config, as
    ``arbiter analyze`` does: sequential at 10 looks, and fixed-horizon at the final look.
    The same data analysed per row (what the A/B/n analysis did before) is shown for
    contrast. Error: any promote or rollback.
``interleaving_aa``
    Interleaving A/A with uniform (3 impressions each), lognormal and Pareto(1.2) activity; a
    user prefers one ranker by ``b_u ~ U(−0.3, 0.3)``, symmetric, so neither is preferred
    overall. 425 users; :func:`arbiter.stats.interleaving.clustered_interleaving_test` and
    :func:`arbiter.stats.verdict.decide_interleaving` once at the end (fixed-sample test),
    and with the confidence sequence
    (:func:`arbiter.stats.interleaving.interleaving_confidence_sequence`, ``rho`` tuned to
    200 users) at 30 looks. The CR1 test with ``G − 1`` df (the previous default) is shown
    for contrast. Error: a significant preference (``winner`` set).
``guardrail_at_limit``
    An error rate exactly at its limit (1 % and 5 %), 100 requests per look, 30 looks,
    judged by :func:`arbiter.stats.guardrails.check_rate` alone (canary at 100 %,
    interleaving) and against a champion at the same rate (A/B). Errors: ever ``breached``
    (a rollback; nominal :data:`~arbiter.stats.guardrails.BREACH_ALPHA`) and ever ``met``
    (a wrong all-clear; nominal ``alpha`` = 0.05, the true rate not being below the limit).
    A one-sided binomial test at 5 % at each look (the rule the issue measured) is shown for
    contrast.

Providers: another module may add scenarios. ``benchmarks/validity_canary.py``, when it
exists, is imported and its ``run_scenarios(runs: int, seed: int) -> list[dict]`` called
(dict keys ``name``, ``runs``, ``rate``, ``se``, ``nominal``; ``--only canary`` runs it
alone).

Usage::

    python benchmarks/validity.py --runs 1000              # every scenario (a few minutes)
    python benchmarks/validity.py --runs 1000 --only interleaving_aa
    python benchmarks/validity.py --runs 200 --json out.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as sps

from arbiter.analysis.policy import to_decision_policy
from arbiter.config import DecisionConfig
from arbiter.stats.guardrails import BREACH_ALPHA, check_rate
from arbiter.stats.interleaving import (
    clustered_interleaving_test,
    interleaving_confidence_sequence,
)
from arbiter.stats.sequential import sequential_rho
from arbiter.stats.sufficient import ProportionStatistic, RatioStatistic
from arbiter.stats.verdict import decide_interleaving, decide_multiarm, pairwise_comparisons

ALPHA = 0.05
Row = dict[str, Any]


def row(name: str, errors: int, runs: int, nominal: float, **extra: Any) -> Row:
    """One result: the error rate and its Monte-Carlo SE ``sqrt(r (1 − r) / runs)``."""
    rate = errors / runs
    se = math.sqrt(rate * (1.0 - rate) / runs)
    return {"name": name, "runs": runs, "rate": rate, "se": se, "nominal": nominal, **extra}


# --- activity --------------------------------------------------------------------------------


def activity(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Rows (impressions) per user: ``uniform`` 3 each; ``lognormal``; ``pareto`` (α = 1.2)."""
    if kind == "uniform":
        return np.full(n, 3, dtype=np.int64)
    if kind == "lognormal":
        return np.maximum(1, np.round(rng.lognormal(0.5, 1.0, n))).astype(np.int64)
    if kind == "pareto":
        return np.minimum(np.floor(rng.pareto(1.2, n) + 1.0), 10_000).astype(np.int64)
    raise ValueError(f"unknown activity {kind!r}")


# --- scenario 3: A/B/n, 4 equal arms, returning users ----------------------------------------

ABN_ARMS = ("champion", "b", "c", "d")


def _ratio(m: np.ndarray, d: np.ndarray) -> RatioStatistic:
    m, d = m.astype(float), d.astype(float)
    return RatioStatistic(
        int(m.size), float(m.sum()), float(m @ m), float(d.sum()), float(d @ d), float(m @ d)
    )


def abn_repeat_users(runs: int, seed: int, *, users: int = 4000, looks: int = 10) -> list[Row]:
    """Scenario 3 (module docstring)."""
    cfg = DecisionConfig(min_sample_per_arm=100)
    seq_pol = to_decision_policy(cfg, mode="ab", task="classification")
    fixed_pol = to_decision_policy(
        cfg.model_copy(update={"sequential": False}), mode="ab", task="classification"
    )
    err = {"per_unit_seq": 0, "per_unit_fixed": 0, "per_row_seq": 0, "per_row_fixed": 0}
    for r in range(runs):
        rng = np.random.default_rng([seed, 3, r])
        rows = activity("pareto", users, rng)
        arm = rng.integers(0, len(ABN_ARMS), users)  # sticky: one arm per user
        acc = rng.beta(8.0, 2.0, users)  # each user's own accuracy (mean 0.8)
        correct = rng.binomial(rows, acc)
        arrival = rng.permutation(users)  # users enter in random order
        hits = dict.fromkeys(err, False)
        for k, end in enumerate(np.linspace(users / looks, users, looks).astype(int)):
            seen = arrival[:end]
            unit_stats: dict[str, Any] = {}
            row_stats: dict[str, Any] = {}
            for i, a in enumerate(ABN_ARMS):
                u = seen[arm[seen] == i]
                unit_stats[a] = _ratio(correct[u], rows[u])
                row_stats[a] = ProportionStatistic(int(rows[u].sum()), int(correct[u].sum()))
            final = k == looks - 1
            for label, st in (("per_unit", unit_stats), ("per_row", row_stats)):
                for mode, pol in (("seq", seq_pol), ("fixed", fixed_pol)):
                    if mode == "fixed" and not final:
                        continue
                    family = pairwise_comparisons(st, ABN_ARMS, pol)
                    v = decide_multiarm(ABN_ARMS, st, family, {}, pol)
                    hits[f"{label}_{mode}"] |= v.decision in ("promote", "rollback")
        for key, hit in hits.items():
            err[key] += hit
    return [
        row("abn_repeat_users: per unit, sequential, 10 looks", err["per_unit_seq"], runs, ALPHA),
        row("abn_repeat_users: per unit, fixed horizon, 1 look", err["per_unit_fixed"], runs,
            ALPHA),
        row("abn_repeat_users: per row (before), sequential, 10 looks", err["per_row_seq"], runs,
            ALPHA, contrast=True),
        row("abn_repeat_users: per row (before), fixed horizon, 1 look", err["per_row_fixed"],
            runs, ALPHA, contrast=True),
    ]  # fmt: skip


# --- scenario 4: interleaving A/A --------------------------------------------------------------


def _interleaving_counts(
    kind: str, users: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = activity(kind, users, rng)
    b = rng.uniform(-0.3, 0.3, users)
    wins_a = rng.binomial(n, 0.4 + b)
    wins_b = rng.binomial(n - wins_a, (0.4 - b) / (0.6 - b))
    return wins_a, wins_b, n - wins_a - wins_b


def _significant(test: Any, n: int, seq: dict[str, float] | None) -> bool:
    v = decide_interleaving(test, n, alpha=ALPHA, min_sample=1, sequential=seq)
    return v.winner is not None


def interleaving_aa(runs: int, seed: int, *, users: int = 425, looks: int = 30) -> list[Row]:
    """Scenario 4 (module docstring)."""
    rho = sequential_rho(ALPHA, 200)
    out: list[Row] = []
    for kind in ("uniform", "lognormal", "pareto"):
        one = one_cr1 = many = 0
        for r in range(runs):
            rng = np.random.default_rng([seed, 4, r, len(kind)])
            wa, wb, t = _interleaving_counts(kind, users, rng)
            final = clustered_interleaving_test(wa, wb, t, alpha=ALPHA)
            total = int((wa + wb + t).sum())
            one += _significant(final, total, None)
            cr1 = clustered_interleaving_test(wa, wb, t, alpha=ALPHA, small_sample="cr1")
            one_cr1 += _significant(cr1, total, None)
            hit = False
            for end in np.linspace(users / looks, users, looks).astype(int):
                test = clustered_interleaving_test(wa[:end], wb[:end], t[:end], alpha=ALPHA)
                lo, hi, p = interleaving_confidence_sequence(test, rho=rho)
                seq = {"ci_low": lo, "ci_high": hi, "p_value": p}
                if _significant(test, int((wa[:end] + wb[:end] + t[:end]).sum()), seq):
                    hit = True
                    break
            many += hit
        out += [
            row(f"interleaving_aa: {kind}, CR2 t-test, 1 look", one, runs, ALPHA),
            row(f"interleaving_aa: {kind}, confidence sequence, {looks} looks", many, runs,
                ALPHA),
            row(f"interleaving_aa: {kind}, CR1 t(G-1) (before), 1 look", one_cr1, runs, ALPHA,
                contrast=True),
        ]  # fmt: skip
    return out


# --- scenario 5: guardrail at its limit ------------------------------------------------------


def guardrail_at_limit(runs: int, seed: int, *, per_look: int = 100, looks: int = 30) -> list[Row]:
    """Scenario 5 (module docstring)."""
    out: list[Row] = []
    for limit in (0.01, 0.05):
        counts = {"breach_alone": 0, "breach_vs_champion": 0, "met": 0, "per_look_test": 0}
        for r in range(runs):
            rng = np.random.default_rng([seed, 5, r, int(limit * 100)])
            errs = np.cumsum(rng.binomial(per_look, limit, looks))
            champ = np.cumsum(rng.binomial(per_look, limit, looks))
            hit = dict.fromkeys(counts, False)
            for k in range(looks):
                n = (k + 1) * per_look
                alone = check_rate("error_rate", int(errs[k]), n, limit, alpha=ALPHA)
                vs = check_rate(
                    "error_rate", int(errs[k]), n, limit, alpha=ALPHA,
                    champion_events=int(champ[k]), champion_n=n,
                )  # fmt: skip
                hit["breach_alone"] |= alone.status == "breached"
                hit["breach_vs_champion"] |= vs.status == "breached"
                hit["met"] |= alone.status == "met"
                # One-sided exact binomial test (= binomtest "greater"): P(X >= k | limit).
                hit["per_look_test"] |= sps.binom.sf(int(errs[k]) - 1, n, limit) < ALPHA
            for key, h in hit.items():
                counts[key] += h
        tag = f"guardrail_at_limit: rate = limit = {limit:g}, {looks} looks x {per_look}"
        out += [
            row(f"{tag}: ever breached (alone)", counts["breach_alone"], runs, BREACH_ALPHA),
            row(f"{tag}: ever breached (vs champion)", counts["breach_vs_champion"], runs,
                BREACH_ALPHA),
            row(f"{tag}: ever met (wrong all-clear)", counts["met"], runs, ALPHA),
            row(f"{tag}: binomial test at 5 % per look (before)", counts["per_look_test"], runs,
                ALPHA, contrast=True),
        ]  # fmt: skip
    return out


# --- providers -------------------------------------------------------------------------------

SCENARIOS: dict[str, Callable[[int, int], list[Row]]] = {
    "abn_repeat_users": abn_repeat_users,
    "interleaving_aa": interleaving_aa,
    "guardrail_at_limit": guardrail_at_limit,
}


def _extra_providers() -> dict[str, Callable[[int, int], list[Row]]]:
    """Scenario modules beside this file (``validity_canary.py``), when present."""
    found: dict[str, Callable[[int, int], list[Row]]] = {}
    here = Path(__file__).resolve().parent
    for name, path in (("canary", here / "validity_canary.py"),):
        if not path.exists():
            continue
        spec = importlib.util.spec_from_file_location(f"validity_{name}", path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
        spec.loader.exec_module(module)
        found[name] = module.run_scenarios
    return found


def providers() -> dict[str, Callable[[int, int], list[Row]]]:
    """Every scenario provider by name: this module's and the optional modules'."""
    return {**SCENARIOS, **_extra_providers()}


def run(runs: int, seed: int, only: str | None = None) -> list[Row]:
    """Run every provider (or ``only`` one) and return the rows."""
    table = providers()
    if only is not None and only not in table:
        raise SystemExit(f"--only: unknown scenario {only!r}; known: {', '.join(table)}")
    rows: list[Row] = []
    for name, fn in table.items():
        if only is None or name == only:
            rows += fn(runs, seed)
    return rows


def holds(r: Row) -> bool:
    """Whether the rate is within simulation error of its nominal level.

    ``rate ≤ nominal + 3 SE`` with the SE of a rate at the nominal level
    (``sqrt(nominal (1 − nominal) / runs)``, the test's null), so a rate of 0 is not judged by
    a zero SE.
    """
    se = math.sqrt(r["nominal"] * (1.0 - r["nominal"]) / r["runs"])
    return bool(r["rate"] <= r["nominal"] + 3.0 * max(se, r["se"]))


def markdown(rows: list[Row]) -> str:
    """The results as a Markdown table (contrast rows marked; they are expected to fail)."""
    lines = [
        "| scenario | runs | error rate | MC SE | nominal | holds |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        verdict = "yes" if holds(r) else "no"
        if r.get("contrast"):
            verdict += " (contrast)"
        lines.append(
            f"| {r['name']} | {r['runs']} | {r['rate']:.4f} | {r['se']:.4f} | "
            f"{r['nominal']:g} | {verdict} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--only", default=None, help=f"one of {', '.join(providers())}")
    parser.add_argument("--json", default=None, help="also write the rows as JSON ('-': stdout)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    rows = run(args.runs, args.seed, args.only)
    elapsed = time.perf_counter() - t0
    print(
        f"# {platform.node()} {platform.machine()} Python {platform.python_version()}, "
        f"numpy {np.__version__}; --runs {args.runs} --seed {args.seed}; {elapsed:.0f} s"
    )
    print(markdown(rows))
    if args.json:
        text = json.dumps(rows, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text, encoding="utf-8")
    failed = [r["name"] for r in rows if not r.get("contrast") and not holds(r)]
    if failed:
        print("does not hold:", "; ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
