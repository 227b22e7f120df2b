"""Statistical validity of arbiter's decision engine, by simulation.

Three checks, each vectorised over runs (numpy arrays of shape ``runs × looks``; no Python
loop per observation):

1. **Peeking.** A/A tests inspected after each of ``--looks`` equal batches. A fixed-horizon
   z-test applied at every look (naive peeking) versus the always-valid asymptotic confidence
   sequence of :mod:`arbiter.stats.sequential` (rejection = the p-value ever drops below
   ``alpha``). Binary metric (p = 0.10) and a skewed continuous metric (lognormal).
2. **Power at the planned sample size.** ``n`` per arm from the standard normal-approximation
   formula for two proportions (pooled variance under H0, unpooled under H1)::

       n = (z_{1-a/2} sqrt(2 pbar qbar) + z_{1-b} sqrt(p1 q1 + p2 q2))^2 / (p2 - p1)^2

   rounded up; statsmodels' ``NormalIndPower`` (Cohen's arcsine ``h``) is shown alongside.
   Experiments are simulated at that ``n`` and tested with the pooled two-proportion z-test;
   empirical power should be within ±2 points of nominal.
3. **Offline paired gate.** An identical challenger (same accuracy, correlated errors) scored
   on the same holdout rows: McNemar's test (:func:`arbiter.stats.paired.mcnemar_test`) fed to
   :func:`arbiter.stats.verdict.decide` in ``mode="offline"``; it must promote at most
   ``alpha`` of the time.

Usage::

    python benchmarks/stats_validity.py                 # full run (2,000 runs)
    python benchmarks/stats_validity.py --quick         # 300 runs
    python benchmarks/stats_validity.py --json out.json # also write JSON ("-" = stdout)
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from arbiter.stats.paired import mcnemar_test
from arbiter.stats.sequential import always_valid_p_value, sequential_rho
from arbiter.stats.sufficient import ProportionStatistic
from arbiter.stats.verdict import ArmObservations, DecisionPolicy, decide

ALPHA = 0.05


@dataclass(frozen=True)
class Rate:
    """A Monte-Carlo proportion with its standard error."""

    label: str
    hits: int
    runs: int

    @property
    def rate(self) -> float:
        return self.hits / self.runs

    @property
    def se(self) -> float:
        return math.sqrt(self.rate * (1.0 - self.rate) / self.runs)

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "hits": self.hits, "runs": self.runs,
                "rate": self.rate, "mc_se": self.se}  # fmt: skip


# --- 1. A/A with peeking ------------------------------------------------------------------


def _batches_proportion(
    rng: np.random.Generator, runs: int, looks: int, batch: int, p: float
) -> tuple[np.ndarray, ...]:
    """Cumulative (n, mean, variance) per arm at each look, shapes (runs, looks)."""
    out = []
    for _ in range(2):
        succ = np.cumsum(rng.binomial(batch, p, size=(runs, looks)), axis=1)
        n = batch * np.arange(1, looks + 1, dtype=np.float64)
        mean = succ / n
        out += [np.broadcast_to(n, mean.shape), mean, mean * (1.0 - mean)]
    return tuple(out)


def _batches_lognormal(
    rng: np.random.Generator, runs: int, looks: int, batch: int, sigma: float
) -> tuple[np.ndarray, ...]:
    """Same for a lognormal metric, accumulating sums and sums of squares batch by batch."""
    out = []
    for _ in range(2):
        s1 = np.empty((runs, looks))
        s2 = np.empty((runs, looks))
        acc1 = np.zeros(runs)
        acc2 = np.zeros(runs)
        for k in range(looks):  # one vectorised draw per look, not per observation
            x = rng.lognormal(0.0, sigma, size=(runs, batch))
            acc1 += x.sum(axis=1)
            acc2 += np.square(x).sum(axis=1)
            s1[:, k], s2[:, k] = acc1, acc2
        n = batch * np.arange(1, looks + 1, dtype=np.float64)
        mean = s1 / n
        var = (s2 - s1 * s1 / n) / (n - 1.0)
        out += [np.broadcast_to(n, mean.shape), mean, var]
    return tuple(out)


def peeking_false_positives(
    runs: int, looks: int, batch: int, seed: int, metric: str, alpha: float = ALPHA
) -> list[Rate]:
    """A/A false-positive rates: naive z at every look, z at the last look, sequential CS."""
    rng = np.random.default_rng(seed)
    if metric == "proportion":
        n_a, m_a, v_a, n_b, m_b, v_b = _batches_proportion(rng, runs, looks, batch, 0.10)
    else:
        n_a, m_a, v_a, n_b, m_b, v_b = _batches_lognormal(rng, runs, looks, batch, 1.0)
    diff = m_b - m_a
    se_unpooled = np.sqrt(v_a / n_a + v_b / n_b)
    if metric == "proportion":
        pooled = (m_a * n_a + m_b * n_b) / (n_a + n_b)
        se_naive = np.sqrt(pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b))
    else:
        se_naive = se_unpooled
    with np.errstate(divide="ignore", invalid="ignore"):
        z_naive = np.where(se_naive > 0, diff / se_naive, 0.0)
        z_seq = np.where(se_unpooled > 0, diff / se_unpooled, 0.0)
    p_naive = 2.0 * stats.norm.sf(np.abs(z_naive))
    total_n = n_a + n_b
    rho = sequential_rho(alpha, float(total_n[0, -1]))  # tuned to the planned horizon
    p_seq = always_valid_p_value(z_seq, total_n, rho)
    return [
        Rate(f"naive z-test, {looks} looks", int(np.any(p_naive < alpha, axis=1).sum()), runs),
        Rate("fixed-horizon z-test, final look only", int((p_naive[:, -1] < alpha).sum()), runs),
        Rate(f"sequential CS, {looks} looks", int(np.any(p_seq < alpha, axis=1).sum()), runs),
    ]


# --- 2. Power at the computed sample size --------------------------------------------------


def sample_size_two_proportions(p1: float, p2: float, alpha: float, power: float) -> int:
    """Per-arm n: pooled variance under H0, unpooled under H1 (two-sided)."""
    z_a = stats.norm.ppf(1.0 - alpha / 2.0)
    z_b = stats.norm.ppf(power)
    pbar = (p1 + p2) / 2.0
    num = z_a * math.sqrt(2.0 * pbar * (1.0 - pbar)) + z_b * math.sqrt(
        p1 * (1.0 - p1) + p2 * (1.0 - p2)
    )
    return math.ceil(num**2 / (p2 - p1) ** 2)


def power_at_planned_n(
    p1: float, p2: float, runs: int, seed: int, alpha: float = ALPHA, power: float = 0.8
) -> dict[str, Any]:
    """Simulate ``runs`` experiments at the formula's n; pooled z-test and sequential CS."""
    n = sample_size_two_proportions(p1, p2, alpha, power)
    h = proportion_effectsize(p2, p1)
    n_statsmodels = math.ceil(NormalIndPower().solve_power(h, alpha=alpha, power=power, ratio=1))
    rng = np.random.default_rng(seed)
    a = rng.binomial(n, p1, size=runs) / n
    b = rng.binomial(n, p2, size=runs) / n
    pooled = (a + b) / 2.0
    z = (b - a) / np.sqrt(pooled * (1.0 - pooled) * 2.0 / n)
    fixed = Rate(
        "fixed-horizon pooled z", int((2.0 * stats.norm.sf(np.abs(z)) < alpha).sum()), runs
    )
    se = np.sqrt((a * (1 - a) + b * (1 - b)) / n)
    p_seq = always_valid_p_value((b - a) / se, 2.0 * n, sequential_rho(alpha, 2.0 * n))
    seq = Rate("sequential CS (one look at n)", int((p_seq < alpha).sum()), runs)
    return {
        "p1": p1,
        "p2": p2,
        "n_per_arm": n,
        "n_per_arm_statsmodels_cohen_h": n_statsmodels,
        "nominal_power": power,
        "fixed": fixed.as_dict(),
        "sequential": seq.as_dict(),
        "deviation_points": 100.0 * (fixed.rate - power),
        "within_2_points": abs(fixed.rate - power) <= 0.02,
    }


# --- 3. Offline paired gate ----------------------------------------------------------------


def paired_gate_false_promotions(
    runs: int, n_rows: int, accuracy: float, discordant: float, seed: int, alpha: float = ALPHA
) -> Rate:
    """Identical challenger: P(only champion right) = P(only challenger right) = discordant/2."""
    rng = np.random.default_rng(seed)
    q = discordant / 2.0
    probs = [accuracy - q, q, q, 1.0 - accuracy - q]  # both right, only A, only B, both wrong
    counts = rng.multinomial(n_rows, probs, size=runs)
    policy = DecisionPolicy(
        mode="offline", sequential=False, alpha=alpha, min_sample_per_arm=min(n_rows, 100)
    )
    y_true = np.ones(n_rows, dtype=np.int8)
    promotions = 0
    for both, only_a, only_b, _ in counts:  # one paired test per run, rows built by np.repeat
        pred_a = np.repeat(
            np.array([1, 1, 0, 0], dtype=np.int8),
            [both, only_a, only_b, n_rows - both - only_a - only_b],
        )
        pred_b = np.repeat(
            np.array([1, 0, 1, 0], dtype=np.int8),
            [both, only_a, only_b, n_rows - both - only_a - only_b],
        )
        result = mcnemar_test(y_true, pred_a, pred_b, alpha=alpha)
        arms = ArmObservations(
            ProportionStatistic(n_rows, int(both + only_a)),
            ProportionStatistic(n_rows, int(both + only_b)),
            primary_result=result,
        )
        promotions += decide(arms, policy).decision == "promote"
    return Rate(f"McNemar gate, n={n_rows}, discordant={discordant:.0%}", promotions, runs)


# --- reporting -----------------------------------------------------------------------------


def _fmt_rate(r: Rate) -> str:
    lo, hi = r.rate - 1.96 * r.se, r.rate + 1.96 * r.se
    return f"{r.rate:.4f} | {r.se:.4f} | [{max(lo, 0):.4f}, {hi:.4f}]"


def run(runs: int, seed: int, looks: int = 20, batch: int = 500) -> dict[str, Any]:
    """Run the three checks and return a JSON-able dict."""
    start = time.perf_counter()
    peeking = {
        metric: [r.as_dict() for r in peeking_false_positives(runs, looks, batch, seed + i, metric)]
        for i, metric in enumerate(("proportion", "lognormal"))
    }
    power_runs = 5 * runs
    power = [
        power_at_planned_n(p1, p2, power_runs, seed + 10 + i)
        for i, (p1, p2) in enumerate(((0.10, 0.12), (0.05, 0.06), (0.30, 0.33)))
    ]
    gate = [
        paired_gate_false_promotions(runs, n_rows, 0.85, disc, seed + 20 + i).as_dict()
        for i, (n_rows, disc) in enumerate(((500, 0.10), (5000, 0.10)))
    ]
    return {
        "config": {
            "runs": runs,
            "power_runs": power_runs,
            "seed": seed,
            "looks": looks,
            "batch_per_arm": batch,
            "alpha": ALPHA,
        },
        "peeking": peeking,
        "power": power,
        "paired_gate": gate,
        "elapsed_seconds": time.perf_counter() - start,
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def to_markdown(res: dict[str, Any]) -> str:
    """Render the result of :func:`run` as Markdown tables."""
    cfg = res["config"]
    lines = [
        f"### 1. A/A false-positive rate under peeking (alpha = {cfg['alpha']}, "
        f"{cfg['looks']} looks × {cfg['batch_per_arm']} per arm, {cfg['runs']} runs)",
        "",
        "| metric | method | FPR | MC SE | 95% MC interval |",
        "|---|---|---|---|---|",
    ]
    for metric, rows in res["peeking"].items():
        for r in rows:
            rate = Rate(r["label"], r["hits"], r["runs"])
            lines.append(f"| {metric} | {r['label']} | {_fmt_rate(rate)} |")
    lines += [
        "",
        f"### 2. Power at the computed sample size (nominal 0.80, alpha = {cfg['alpha']}, "
        f"{cfg['power_runs']} runs each)",
        "",
        "| p1 → p2 | n/arm (formula) | n/arm (NormalIndPower, Cohen h) | power, pooled z | MC SE "
        "| deviation (points) | within ±2 | power, sequential CS at same n |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in res["power"]:
        f, s = p["fixed"], p["sequential"]
        lines.append(
            f"| {p['p1']:.2f} → {p['p2']:.2f} | {p['n_per_arm']} | "
            f"{p['n_per_arm_statsmodels_cohen_h']} | {f['rate']:.4f} | {f['mc_se']:.4f} | "
            f"{p['deviation_points']:+.2f} | {'yes' if p['within_2_points'] else 'NO'} | "
            f"{s['rate']:.4f} |"
        )
    lines += [
        "",
        f"### 3. Offline paired gate: identical challenger (accuracy 0.85), {cfg['runs']} runs",
        "",
        "| gate | promotion rate | MC SE | 95% MC interval | ≤ alpha |",
        "|---|---|---|---|---|",
    ]
    for g in res["paired_gate"]:
        rate = Rate(g["label"], g["hits"], g["runs"])
        ok = rate.rate <= cfg["alpha"]
        lines.append(f"| {g['label']} | {_fmt_rate(rate)} | {'yes' if ok else 'NO'} |")
    lines += ["", f"Elapsed: {res['elapsed_seconds']:.1f} s."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000, help="simulated runs (default 2000)")
    parser.add_argument("--seed", type=int, default=20261124, help="base random seed")
    parser.add_argument("--quick", action="store_true", help="300 runs (overrides --runs)")
    parser.add_argument("--looks", type=int, default=20, help="interim looks (default 20)")
    parser.add_argument("--batch", type=int, default=500, help="observations per arm per look")
    parser.add_argument(
        "--json", nargs="?", const="-", default=None, metavar="PATH",
        help="also write the results as JSON to PATH ('-' or no value: stdout)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    runs = 300 if args.quick else args.runs
    if runs < 10 or args.looks < 1 or args.batch < 2:
        parser.error("need --runs >= 10, --looks >= 1 and --batch >= 2")
    res = run(runs, args.seed, looks=args.looks, batch=args.batch)
    sys.stdout.write(to_markdown(res) + "\n")
    if args.json == "-":
        sys.stdout.write(json.dumps(res, indent=2) + "\n")
    elif args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(res, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
