"""The statistics engine: pure functions over sufficient statistics, no I/O.

Aggregation happens where the events live (SQL); these functions take the resulting counts and
sums (:mod:`arbiter.stats.sufficient`) and return result dataclasses with a ``to_dict()``.
Paired tests (:mod:`arbiter.stats.paired`) take arrays of per-row outcomes, since a shadow test
or an offline holdout is bounded by its labelled rows.

See ``docs/analysis.md`` for which test to use when.
"""

from __future__ import annotations

from arbiter.stats.bayesian import (
    BayesianResult,
    BetaPrior,
    bayesian_summary,
    beta_binomial_summary,
    beta_prob_greater,
    normal_summary,
)
from arbiter.stats.cuped import CupedResult, cuped_test, cuped_theta
from arbiter.stats.interleaving import clustered_interleaving_test, interleaving_test
from arbiter.stats.means import ratio_mean_and_variance, ratio_test, welch_test
from arbiter.stats.multiple import adjust_p_values, benjamini_hochberg, holm
from arbiter.stats.paired import (
    BOOTSTRAP_METRICS,
    MCNEMAR_EXACT_BELOW,
    delong_components,
    delong_test,
    mcnemar_test,
    paired_bootstrap,
    paired_t_test,
)
from arbiter.stats.power import (
    mde_means,
    mde_proportions,
    power_means,
    power_proportions,
    remaining_sample_size,
    sample_size_means,
    sample_size_proportions,
)
from arbiter.stats.proportions import k_proportion_test, two_proportion_test
from arbiter.stats.results import (
    InterleavingResult,
    KProportionResult,
    MarascuiloPair,
    MDEResult,
    MeansResult,
    MultipleTestingResult,
    PairedTestResult,
    PowerResult,
    RemainingSampleResult,
    SampleSizeResult,
    SRMResult,
    TwoProportionResult,
    finite_or_none,
)
from arbiter.stats.sequential import (
    SequentialConfig,
    SequentialResult,
    always_valid_p_value,
    confidence_sequence,
    cs_halfwidth,
    msprt,
    msprt_log_likelihood_ratio,
    normal_mixture_log_evalue,
    sequential_rho,
)
from arbiter.stats.srm import DEFAULT_SRM_THRESHOLD, srm_test
from arbiter.stats.sufficient import (
    ProportionStatistic,
    RatioStatistic,
    RegressionAdjustmentStatistic,
    SampleMeanStatistic,
)
from arbiter.stats.verdict import (
    ArmObservations,
    Criterion,
    Decision,
    DecisionPolicy,
    Guardrail,
    GuardrailObservation,
    PrimarySummary,
    ShadowClassicPolicy,
    ShadowObservations,
    Verdict,
    decide,
    decide_shadow_classic,
)

__all__ = [
    "BOOTSTRAP_METRICS",
    "DEFAULT_SRM_THRESHOLD",
    "MCNEMAR_EXACT_BELOW",
    "ArmObservations",
    "BayesianResult",
    "BetaPrior",
    "Criterion",
    "CupedResult",
    "Decision",
    "DecisionPolicy",
    "Guardrail",
    "GuardrailObservation",
    "InterleavingResult",
    "KProportionResult",
    "MDEResult",
    "MarascuiloPair",
    "MeansResult",
    "MultipleTestingResult",
    "PairedTestResult",
    "PowerResult",
    "PrimarySummary",
    "ProportionStatistic",
    "RatioStatistic",
    "RegressionAdjustmentStatistic",
    "RemainingSampleResult",
    "SRMResult",
    "SampleMeanStatistic",
    "SampleSizeResult",
    "SequentialConfig",
    "SequentialResult",
    "ShadowClassicPolicy",
    "ShadowObservations",
    "TwoProportionResult",
    "Verdict",
    "adjust_p_values",
    "always_valid_p_value",
    "bayesian_summary",
    "benjamini_hochberg",
    "beta_binomial_summary",
    "beta_prob_greater",
    "clustered_interleaving_test",
    "confidence_sequence",
    "cs_halfwidth",
    "cuped_test",
    "cuped_theta",
    "decide",
    "decide_shadow_classic",
    "delong_components",
    "delong_test",
    "finite_or_none",
    "holm",
    "interleaving_test",
    "k_proportion_test",
    "mcnemar_test",
    "mde_means",
    "mde_proportions",
    "msprt",
    "msprt_log_likelihood_ratio",
    "normal_mixture_log_evalue",
    "normal_summary",
    "paired_bootstrap",
    "paired_t_test",
    "power_means",
    "power_proportions",
    "ratio_mean_and_variance",
    "ratio_test",
    "remaining_sample_size",
    "sample_size_means",
    "sample_size_proportions",
    "sequential_rho",
    "srm_test",
    "two_proportion_test",
    "welch_test",
]
