"""Analysis of a Thompson-sampling bandit experiment (``strategy: bandit``).

A bandit moves traffic toward the arm that looks best, so its data answer a different question
than an A/B test's. This module reads, from the event log:

* per arm, the **reward sufficient statistics** (:func:`bandit_rewards`): rows served
  without error, rows whose latest label is a valid reward, their sum, labels that are not
  valid rewards, and failed rows (whose labels earn nothing: a failed request showed the user
  no answer of the arm's, so its label cannot reward the arm). The
  gateway's controller (:mod:`arbiter.gateway.bandit`) builds its posterior from the same
  query, so the report and the live allocation never disagree on the data;
* the **allocation over time** (:func:`allocation_history`): the share of requests each arm
  actually served per time bucket. It is reconstructed from the log rather than from a record
  of the controller's decisions because the log is what happened: every worker and replica
  computes its own allocation, requests are routed by a random draw, and the log is the one
  place where all of them meet (see ``docs/interleaving-and-bandits.md``).

:func:`analyze_bandit` turns them into a :class:`BanditAnalysis`: naive per-arm means (with
the warning below), the Beta posteriors, the posterior probability that each arm is best, and
a decision.

.. warning::
   Bandit-allocated data are adaptively sampled: an arm's share depends on its earlier
   rewards. Naive per-arm means are biased and naive confidence intervals and p-values are
   invalid (Hadad, Hirshberg, Zhan, Wager & Athey 2021, *PNAS* 118(15); Kasy & Sautmann 2021,
   *Econometrica* 89(1)). No frequentist test is run here. The posterior probability of being
   best is a Bayesian statement (the allocation rule depends only on observed data, so it
   drops out of the likelihood) that depends on the prior; it is used to say which arm leads,
   and a challenger that leads is confirmed with a fixed-split A/B test before promotion.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import numpy as np

from arbiter.analysis.metrics import metric_statistics
from arbiter.config import BanditExperimentConfig, BanditSettings, DecisionConfig, ModelConfig
from arbiter.errors import NotFoundError
from arbiter.events.query import Scope, latest_labels_sql
from arbiter.routing.bandit import BanditConfig, BanditState, Reward, allocation, update_batch
from arbiter.stats.verdict import P_BEST_THRESHOLD, Verdict, decide_bandit

P_BEST_DRAWS = 200_000
"""Monte-Carlo draws for the reported P(best): standard error at most 0.0011."""

HISTORY_BUCKETS = 40
"""Time buckets of the allocation-over-time series."""

ADJUSTED_INFERENCE_WARNING = (
    "Bandit-allocated data are adaptively sampled: each arm's share depended on its earlier "
    "rewards, so naive per-arm means are biased and naive confidence intervals or "
    "p-values are not valid for them. Use adjusted inference (adaptively weighted estimators, "
    "Hadad, Hirshberg, Zhan, Wager & Athey 2021, PNAS 118(15); Kasy & Sautmann 2021, "
    "Econometrica 89(1)) or confirm the leading arm with a fixed-split A/B test."
)

# A failed row (``error`` set: the arm answered nothing) earns no reward: a label posted for
# its request id says nothing about the arm's answer, so it is neither a reward nor invalid;
# the row is counted in ``failed`` instead of ``served``.
# Latest label per served row, by the rule of the ``labeled`` view (latest ts, then later file,
# then later row: :func:`arbiter.events.query.latest_labels_sql`), but computed on this
# experiment's labels only: the semi join filters the raw feedback before the arg_max
# aggregation, so the cost follows the experiment rather than every label ever posted (2 M
# predictions + 1.2 M labels: 0.3 s, against 0.65 s through the ``latest_feedback`` view,
# which aggregates every label first).
_REWARDS_SQL = """
WITH exp_rows AS (
    SELECT arm, request_id, row_index, error IS NOT NULL AS failed
    FROM served
    WHERE {scope}
),
rewards AS (
    SELECT request_id, row_index, label_num AS reward FROM ({latest})
)
SELECT s.arm,
       count(*) FILTER (WHERE NOT s.failed) AS served,
       count(r.request_id) FILTER (WHERE {valid}) AS rewarded,
       coalesce(sum(r.reward) FILTER (WHERE {valid}), 0.0) AS reward_sum,
       count(r.request_id) FILTER (WHERE NOT coalesce({valid}, false)) AS invalid,
       count(*) FILTER (WHERE s.failed) AS failed
FROM exp_rows AS s
LEFT JOIN rewards AS r
    ON NOT s.failed AND s.request_id = r.request_id AND s.row_index = r.row_index
GROUP BY s.arm
"""
_VALID_SQL: dict[str, str] = {
    "binary": "r.reward IN (0.0, 1.0)",
    # NaN sorts above every number in DuckDB, so it is not BETWEEN 0 and 1.
    "bounded": "r.reward BETWEEN 0.0 AND 1.0",
}


@dataclass(frozen=True, slots=True)
class ArmRewards:
    """Reward sufficient statistics of one arm, from the event log.

    Attributes
    ----------
    arm : str
    served : int
        Rows this arm served successfully (forced and failed rows left out), labelled or not.
    rewarded : int
        Rows whose latest label is a valid reward of the declared type.
    reward_sum : float
        Sum of those rewards.
    invalid : int
        Rows whose latest label is not a valid reward (not a number, outside [0, 1], or not
        0/1 for a binary reward): ignored by the posterior, counted so they can be seen.
    failed : int
        Rows where the arm failed (``error`` logged): not in ``served``, and a label posted
        for them is ignored (the arm answered nothing the label could reward).
    """

    arm: str
    served: int = 0
    rewarded: int = 0
    reward_sum: float = 0.0
    invalid: int = 0
    failed: int = 0

    @property
    def mean(self) -> float:
        """Naive mean reward (biased under bandit allocation; see the module warning)."""
        return self.reward_sum / self.rewarded if self.rewarded else math.nan


def bandit_rewards(
    con: duckdb.DuckDBPyConnection,
    model: str,
    experiment: str,
    arms: Sequence[str],
    reward: Reward,
) -> dict[str, ArmRewards]:
    """Per-arm reward sufficient statistics of one bandit experiment, in one SQL query.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        From :meth:`arbiter.events.EventStore.connect`.
    model, experiment : str
        As logged.
    arms : sequence of str
        The arms to report, in order; an arm that served nothing gets zeros. Logged arms not
        listed are left out.
    reward : {"binary", "bounded"}
        Which labels are valid rewards: 0/1, or any number in [0, 1].

    Returns
    -------
    dict of str to ArmRewards
        Keyed by arm, in the order of ``arms``.
    """
    scope = Scope(model, experiment)
    latest = latest_labels_sql(
        "SEMI JOIN (SELECT request_id, row_index FROM exp_rows WHERE NOT failed) "
        "USING (request_id, row_index)",
        fields=("label_num",),
    )
    # valid: one of the fixed _VALID_SQL expressions, chosen by the reward kind.
    sql = _REWARDS_SQL.format(scope=scope.where(), latest=latest, valid=_VALID_SQL[reward])
    rows = con.execute(sql, scope.params).fetchall()
    found = {
        str(arm): ArmRewards(
            str(arm), int(served), int(rewarded), float(total), int(invalid), int(failed)
        )
        for arm, served, rewarded, total, invalid, failed in rows
    }
    return {arm: found.get(arm, ArmRewards(arm)) for arm in arms}


def metric_rewards(
    con: duckdb.DuckDBPyConnection,
    model: str,
    experiment: str,
    arms: Sequence[str],
    model_config: ModelConfig,
    metric: str,
) -> tuple[dict[str, ArmRewards], int]:
    """Per-arm rewards from a 0/1 metric's per-unit values (``reward: {metric: NAME}``).

    One reward per exposed unit: its value of ``metric``
    (:func:`arbiter.analysis.metrics.metric_statistics`: outcomes after the unit's first
    exposure, zero without any), so ``rewarded`` is the arm's units and ``reward_sum`` the sum
    of their values. Returns the rewards and the number of crossed units (exposed to more than
    one arm: left out of every arm). ``con``'s ``predictions`` view is swapped for the query
    and restored.
    """
    # A bandit draws the arm per request (logged ``unit_random``) even when the request names
    # its unit; metric exposure counts only units whose arm was assigned to them. Here the
    # unit id does identify the user, so those rows count as exposures for this query (a
    # unit the draws sent to several arms is crossed, and left out, by metric_statistics).
    con.execute("ALTER VIEW predictions RENAME TO _bandit_predictions")
    try:
        con.execute(
            "CREATE VIEW predictions AS SELECT * REPLACE "
            "(coalesce(unit_random, false) AND unit_id IS NULL AS unit_random) "
            "FROM _bandit_predictions"
        )
        try:
            data = metric_statistics(
                con, Scope(model, experiment), model_config, metric, arms=list(arms)
            )
        finally:
            con.execute("DROP VIEW predictions")
    finally:
        con.execute("ALTER VIEW _bandit_predictions RENAME TO predictions")
    out: dict[str, ArmRewards] = {}
    for arm in arms:
        stat = data.stats.get(arm)
        units = int(data.units.get(arm, 0))
        total = float(getattr(stat, "successes", getattr(stat, "sum", 0.0))) if stat else 0.0
        out[arm] = ArmRewards(arm, served=units, rewarded=units, reward_sum=total)
    return out, int(data.crossed_units)


def arm_rewards(
    con: duckdb.DuckDBPyConnection,
    model: str,
    experiment: str,
    arms: Sequence[str],
    settings: BanditSettings,
    model_config: ModelConfig | None,
) -> tuple[dict[str, ArmRewards], int]:
    """The rewards the settings name: labels (:func:`bandit_rewards`) or a metric.

    Returns the rewards per arm and the crossed units (0 for label rewards).
    """
    metric = settings.reward_metric
    if metric is None or model_config is None:
        return bandit_rewards(con, model, experiment, arms, settings.reward_kind), 0
    return metric_rewards(con, model, experiment, arms, model_config, metric)


def bandit_config(settings: BanditSettings, n_arms: int) -> BanditConfig:
    """The core's :class:`BanditConfig` for the ``experiment.bandit`` settings.

    The home configuration rejects a floor above ``1/n_arms``, so a configured experiment
    never needs this; but an experiment analysed without its configuration gets its arms from
    the log and the default floor, which many arms can make impossible. Such a floor is
    lowered to ``1/n_arms`` (uniform allocation), the closest allocation every arm can meet,
    and :func:`analyze_bandit` says so in a note.
    """
    return BanditConfig(
        floor=min(settings.floor, 1.0 / n_arms),
        n_warmup=settings.warmup,
        reward=settings.reward_kind,
    )


def bandit_state(rewards: dict[str, ArmRewards], config: BanditConfig) -> BanditState:
    """The posterior after every valid reward of the log (one batch update per arm)."""
    state = BanditState.new(tuple(rewards), config)
    for arm, r in rewards.items():
        # Rounding in a float SUM can overshoot the count by an ulp; the core checks the range.
        total = min(max(r.reward_sum, 0.0), float(r.rewarded))
        state = update_batch(state, arm, total, r.rewarded)
    return state


def allocation_rng(experiment: str, state: BanditState) -> np.random.Generator:
    """A generator seeded by the experiment and its sufficient statistics.

    Every worker and replica that reads the same log snapshot computes the same Monte-Carlo
    allocation, bit for bit, and a rerun of the analysis reproduces the gateway's numbers.
    """
    key = repr((experiment, state.arms, state.successes, state.failures, state.n))
    seed = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng(seed)


def p_best(state: BanditState, rng: np.random.Generator, draws: int = P_BEST_DRAWS) -> np.ndarray:
    """Posterior probability that each arm has the highest mean reward (no floor, no warm-up)."""
    return allocation(state.posterior_params, 0.0, rng, draws=draws)


@dataclass(frozen=True, slots=True)
class AllocationHistory:
    """Share of requests each arm served, per equal-width time bucket.

    Attributes
    ----------
    start : datetime or None
        First served request (None when nothing was served).
    bucket_s : float
        Bucket width in seconds.
    elapsed_s : tuple of float
        Middle of each bucket, seconds since ``start``.
    requests : dict of str to tuple of int
        Requests served by each arm in each bucket.
    """

    start: datetime | None
    bucket_s: float
    elapsed_s: tuple[float, ...]
    requests: dict[str, tuple[int, ...]]

    def shares(self) -> dict[str, tuple[float, ...]]:
        """Share of each bucket's requests per arm (NaN for a bucket without requests)."""
        counts = np.array([self.requests[a] for a in self.requests], dtype=float)
        totals = counts.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            shares = counts / totals
        return {a: tuple(float(v) for v in shares[i]) for i, a in enumerate(self.requests)}


def allocation_history(
    con: duckdb.DuckDBPyConnection,
    model: str,
    experiment: str,
    arms: Sequence[str],
    buckets: int = HISTORY_BUCKETS,
) -> AllocationHistory:
    """Requests served per arm per time bucket (``row_index = 0``: one row per request)."""
    scope = Scope(model, experiment)
    where = f"{scope.where()} AND row_index = 0"
    params = scope.params
    row = con.execute(
        f"SELECT min(ts), epoch_us(min(ts)), epoch_us(max(ts)) FROM served WHERE {where}",
        params,
    ).fetchone()
    if row is None or row[0] is None:
        return AllocationHistory(None, 0.0, (), {a: () for a in arms})
    start, t0, t1 = row
    width_us = max(math.ceil((t1 - t0 + 1) / buckets), 1)
    counts = con.execute(
        f"SELECT arm, (epoch_us(ts) - $t0) // $w AS bucket, count(*) FROM served "
        f"WHERE {where} GROUP BY ALL",
        {**params, "t0": t0, "w": width_us},
    ).fetchall()
    n_buckets = int((t1 - t0) // width_us) + 1
    table = {a: [0] * n_buckets for a in arms}
    for arm, bucket, n in counts:
        if arm in table:
            table[arm][int(bucket)] = int(n)
    width_s = width_us / 1e6
    return AllocationHistory(
        start,
        width_s,
        tuple((i + 0.5) * width_s for i in range(n_buckets)),
        {a: tuple(v) for a, v in table.items()},
    )


@dataclass(frozen=True)
class BanditAnalysis:
    """What ``arbiter analyze`` found about one bandit experiment (an ``Analysis``).

    Attributes
    ----------
    model, experiment, strategy : str
    reward : {"binary", "bounded"}
    aliases : dict of str to str
        Arm → registry alias (from the configuration; empty when it is not this experiment's).
    rewards : dict of str to ArmRewards
    state : BanditState
        The Beta posteriors (uniform prior) and the warm-up and floor of the configuration.
    p_best : dict of str to float
        Posterior probability that each arm is best.
    current_allocation : dict of str to float
        The allocation the gateway's controller computes from this log snapshot.
    history : AllocationHistory
    verdict : Verdict
        The decision of :func:`arbiter.stats.verdict.decide_bandit`; ``leader``,
        ``decision`` and ``reasons`` read it.
    notes : tuple of str
    """

    model: str
    experiment: str
    reward: Reward
    aliases: dict[str, str]
    rewards: dict[str, ArmRewards]
    state: BanditState
    p_best: dict[str, float]
    current_allocation: dict[str, float]
    history: AllocationHistory
    verdict: Verdict
    notes: tuple[str, ...] = ()
    strategy: str = field(default="bandit")

    @property
    def decision(self) -> str:
        """``continue``, ``keep_champion`` or ``confirm_with_ab`` (see :func:`decide_bandit`)."""
        return self.verdict.decision

    @property
    def decision_(self) -> str:
        """The former field name of :attr:`decision`, kept for readers of older code."""
        return self.verdict.decision

    @property
    def leader(self) -> str | None:
        """The arm whose P(best) reached :data:`P_BEST_THRESHOLD`, if any."""
        return self.verdict.winner

    @property
    def reasons(self) -> tuple[str, ...]:
        """Why the decision is what it is: the verdict's criteria, in words."""
        return tuple(c.detail for c in self.verdict.reasons)

    def arm_rows(self) -> list[dict[str, Any]]:
        """One plain dict per arm, for tables and JSON."""
        means = self.state.posterior_mean
        params = self.state.posterior_params
        last = {a: v[-1] if v else math.nan for a, v in self.history.shares().items()}
        return [
            {
                "arm": arm,
                "alias": self.aliases.get(arm),
                "served": r.served,
                "rewarded": r.rewarded,
                "reward_sum": r.reward_sum,
                "invalid_rewards": r.invalid,
                "failed": r.failed,
                "mean_reward_naive": r.mean,
                "posterior_alpha": float(params[i, 0]),
                "posterior_beta": float(params[i, 1]),
                "posterior_mean": float(means[i]),
                "p_best": self.p_best[arm],
                "current_allocation": self.current_allocation[arm],
                "last_bucket_share": last.get(arm, math.nan),
            }
            for i, (arm, r) in enumerate(self.rewards.items())
        ]

    def to_dict(self) -> dict[str, Any]:
        def plain(v: Any) -> Any:
            if isinstance(v, float) and not math.isfinite(v):
                return None
            return v

        c = self.state.config
        h = self.history
        return {
            "model": self.model,
            "experiment": self.experiment,
            "strategy": self.strategy,
            "decision": self.decision,
            "leader": self.leader,
            "reasons": list(self.reasons),
            "warning": ADJUSTED_INFERENCE_WARNING,
            "reward": self.reward,
            "p_best_threshold": P_BEST_THRESHOLD,
            "warmup": c.n_warmup,
            "floor": c.floor,
            "in_warmup": self.state.in_warmup,
            "prior": {"alpha": c.prior_alpha, "beta": c.prior_beta},
            "arms": [{k: plain(v) for k, v in row.items()} for row in self.arm_rows()],
            "allocation_over_time": {
                "start": None if h.start is None else h.start.isoformat(),
                "bucket_s": h.bucket_s,
                "elapsed_s": list(h.elapsed_s),
                "requests": {a: list(v) for a, v in h.requests.items()},
                "shares": {a: [plain(x) for x in v] for a, v in h.shares().items()},
            },
            "notes": list(self.notes),
        }


def analyze_bandit(
    con: duckdb.DuckDBPyConnection,
    model: str,
    experiment: str,
    *,
    model_config: ModelConfig | None = None,
    policy: DecisionConfig | None = None,
) -> BanditAnalysis:
    """Analyse one bandit experiment from the event log.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        From :meth:`arbiter.events.EventStore.connect`.
    model, experiment : str
        As logged.
    model_config : ModelConfig, optional
        The model's configuration. When its experiment is this one, its arms, aliases and
        ``experiment.bandit`` settings (reward type, warm-up, floor) are used; otherwise the
        arms come from the log, rewards are read as bounded (which also accepts 0/1) and the
        defaults of :class:`~arbiter.config.BanditSettings` apply.
    policy : DecisionConfig, optional
        Accepted for the common analyzer signature and not used: the fixed-split rules it
        holds (alpha, sample sizes, guardrails) do not apply to bandit data; the decision
        follows :func:`arbiter.stats.verdict.decide_bandit`.

    Raises
    ------
    NotFoundError
        The experiment served nothing.
    """
    notes: list[str] = []
    # The home config describes this experiment only if it names it and is still a bandit (a
    # config since switched to another strategy under the same experiment name is not).
    exp_config = None if model_config is None else model_config.experiment
    own = (
        model_config is not None
        and isinstance(exp_config, BanditExperimentConfig)
        and model_config.experiment_name(model) == experiment
    )
    if own:
        assert model_config is not None and isinstance(exp_config, BanditExperimentConfig)
        aliases = model_config.arms()
        settings = exp_config.bandit
        arms = list(aliases)
    else:
        aliases = {}
        settings = BanditSettings(reward="bounded")
        scope = Scope(model, experiment)
        logged = [
            r[0]
            for r in con.execute(
                f"SELECT DISTINCT arm FROM served WHERE {scope.where()} "
                "ORDER BY arm = 'champion' DESC, arm",
                scope.params,
            ).fetchall()
        ]
        if not logged:
            raise NotFoundError(f"experiment {experiment!r} of model {model!r} served nothing")
        arms = logged
        notes.append(
            "the configuration is not this experiment's: arms from the log, rewards read as "
            "bounded in [0, 1], default warm-up and floor"
        )
    rewards, crossed = arm_rewards(
        con, model, experiment, arms, settings, model_config if own else None
    )
    if settings.reward_metric is not None and own:
        notes.append(
            f"rewards: each unit's {settings.reward_metric} after its first exposure"
            + (f"; {crossed:,} unit(s) exposed to several arms left out" if crossed else "")
        )
    if not any(r.served for r in rewards.values()):
        raise NotFoundError(f"experiment {experiment!r} of model {model!r} served nothing")
    config = bandit_config(settings, len(arms))
    if config.floor < settings.floor:  # only without the configuration (it rejects this)
        notes.append(f"floor {settings.floor:g} is impossible for {len(arms)} arms; 1/k used")
    state = bandit_state(rewards, config)
    from arbiter.routing.bandit import state_allocation

    now = state_allocation(state, allocation_rng(experiment, state))
    probs = p_best(state, np.random.default_rng(0))
    p = {a: float(v) for a, v in zip(state.arms, probs, strict=True)}
    verdict = decide_bandit(
        p, dict(zip(state.arms, state.n, strict=True)), warmup=state.config.n_warmup
    )
    invalid = sum(r.invalid for r in rewards.values())
    if invalid:
        notes.append(
            f"{invalid} label(s) were not valid {settings.reward_kind} rewards and were ignored"
        )
    failed = {a: r.failed for a, r in rewards.items() if r.failed}
    if failed:
        notes.append(
            "failed rows earn no reward (their labels are ignored) and are not counted as "
            f"served: {', '.join(f'{a} {n:,}' for a, n in failed.items())}"
        )
    return BanditAnalysis(
        model=model,
        experiment=experiment,
        reward=settings.reward_kind,
        aliases=dict(aliases),
        rewards=rewards,
        state=state,
        p_best=p,
        current_allocation={a: float(v) for a, v in zip(state.arms, now, strict=True)},
        history=allocation_history(con, model, experiment, arms),
        verdict=verdict,
        notes=tuple(notes),
    )


__all__ = [
    "ADJUSTED_INFERENCE_WARNING",
    "HISTORY_BUCKETS",
    "P_BEST_DRAWS",
    "P_BEST_THRESHOLD",
    "AllocationHistory",
    "ArmRewards",
    "BanditAnalysis",
    "allocation_history",
    "allocation_rng",
    "analyze_bandit",
    "arm_rewards",
    "bandit_config",
    "bandit_rewards",
    "bandit_state",
    "metric_rewards",
    "p_best",
]
