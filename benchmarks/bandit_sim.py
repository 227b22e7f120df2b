"""Thompson sampling vs uniform A/B/n allocation on simulated Bernoulli arms.

For each scenario (arm conversion rates) and seed, requests arrive in batches of ``--batch``;
the Thompson bandit (:mod:`arbiter.routing.bandit`: warm-up, floor, Monte-Carlo allocation)
recomputes its allocation after every batch, as a gateway would, and the batch is split
across arms by a multinomial draw. Uniform A/B/n sends 1/k to every arm throughout.

Reported at several horizons, averaged over seeds with Monte-Carlo standard errors:

* cumulative (pseudo-)regret against the best arm, ``Σ_arms n_arm · (μ* − μ_arm)``, in
  conversions lost;
* share of traffic sent to the best arm so far.

Usage::

    python benchmarks/bandit_sim.py                # 100 seeds (about 45 s on 2 cores)
    python benchmarks/bandit_sim.py --seeds 20     # quicker
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from arbiter.routing.bandit import BanditConfig, BanditState, state_allocation, update_batch

SCENARIOS = {
    "separated (0.10 / 0.11 / 0.13)": (0.10, 0.11, 0.13),
    "close (0.100 / 0.105 / 0.110)": (0.100, 0.105, 0.110),
}
HORIZONS = (1_000, 5_000, 20_000, 50_000)


def simulate(
    rates: tuple[float, ...], config: BanditConfig, seed: int, batch: int, horizon: int
) -> dict[str, np.ndarray]:
    """Cumulative regret and best-arm share at the end of every batch, for both policies."""
    rng = np.random.default_rng(seed)
    mu = np.asarray(rates)
    gaps = mu.max() - mu
    best = int(np.argmax(mu))
    k = mu.size
    state = BanditState.new([f"arm{i}" for i in range(k)], config)
    steps = horizon // batch
    out = {name: np.empty(steps) for name in ("ts_regret", "ts_best", "u_regret", "u_best")}
    n_ts = np.zeros(k)
    n_u = np.zeros(k)
    for t in range(steps):
        p = state_allocation(state, rng)
        counts = rng.multinomial(batch, p)
        conversions = rng.binomial(counts, mu)
        for i in range(k):
            state = update_batch(state, state.arms[i], int(conversions[i]), int(counts[i]))
        n_ts += counts
        n_u += rng.multinomial(batch, np.full(k, 1.0 / k))
        total = (t + 1) * batch
        out["ts_regret"][t] = n_ts @ gaps
        out["ts_best"][t] = n_ts[best] / total
        out["u_regret"][t] = n_u @ gaps
        out["u_best"][t] = n_u[best] / total
    return out


def _fmt(values: np.ndarray, digits: int) -> str:
    se = values.std(ddof=1) / np.sqrt(values.size)
    return f"{values.mean():.{digits}f} ± {se:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--floor", type=float, default=0.01)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--draws", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=20261124)
    args = parser.parse_args()

    config = BanditConfig(floor=args.floor, n_warmup=args.warmup, draws=args.draws)
    horizon = max(HORIZONS)
    started = time.perf_counter()
    print(
        f"Python {platform.python_version()}, numpy {np.__version__}; {args.seeds} seeds, "
        f"batch {args.batch}, floor {args.floor}, warm-up {args.warmup}/arm, "
        f"{args.draws} Monte-Carlo draws per allocation\n"
    )
    for label, rates in SCENARIOS.items():
        runs = [
            simulate(rates, config, args.seed + s, args.batch, horizon) for s in range(args.seeds)
        ]
        stacked = {key: np.stack([r[key] for r in runs]) for key in runs[0]}
        print(f"### {label}\n")
        print(
            "| horizon | regret, Thompson | regret, uniform | regret ratio "
            "| best-arm share, Thompson | best-arm share, uniform |"
        )
        print("|---:|---:|---:|---:|---:|---:|")
        for h in HORIZONS:
            j = h // args.batch - 1
            ts, u = stacked["ts_regret"][:, j], stacked["u_regret"][:, j]
            print(
                f"| {h:,} | {_fmt(ts, 1)} | {_fmt(u, 1)} | {ts.mean() / u.mean():.2f} "
                f"| {_fmt(stacked['ts_best'][:, j], 3)} | {_fmt(stacked['u_best'][:, j], 3)} |"
            )
        print()
    print(f"Wall time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
