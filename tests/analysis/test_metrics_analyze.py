"""``arbiter analyze`` with business metrics: the verdict on the primary metric, guardrail
metrics, the ``metrics`` list of ``--json`` and the report sections (a home with outcomes)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from typer.testing import CliRunner

from arbiter.analysis import analyze_model
from arbiter.cli import app
from arbiter.config import HomeConfig, ModelConfig, dump_config
from arbiter.events import EventStore

from .conftest import write_log

runner = CliRunner()

METRICS = {
    "conversion": {"event": "purchase", "aggregate": "any"},
    "revenue": {"event": "purchase", "aggregate": "sum"},
    "chargebacks": {"event": "chargeback", "aggregate": "count", "direction": "decrease"},
    "revenue_per_purchase": {"ratio": ["revenue", "purchases"]},
    "purchases": {"event": "purchase", "aggregate": "count"},
}


def _write_outcomes(
    store: EventStore, p: dict[str, float], chargeback: dict[str, float], seed: int = 0
) -> None:
    """Purchases (rate ``p[arm]``) and chargebacks after each unit's exposure, one before."""
    rng = np.random.default_rng(seed)
    con = store.connect()
    try:
        units = con.execute(
            "SELECT unit_id, arm, epoch_us(min(ts)) FROM served GROUP BY unit_id, arm"
        ).fetchall()
    finally:
        con.close()
    rows: list[dict[str, Any]] = []
    for unit, arm, ts in units:
        if rng.random() < p[arm]:
            value = float(np.round(rng.gamma(2.0, 10.0), 2))
            rows.append({"unit_id": unit, "event": "purchase", "value": value, "ts": ts + 5})
        if rng.random() < chargeback[arm]:
            rows.append({"unit_id": unit, "event": "chargeback", "ts": ts + 9})
        if rng.random() < 0.1:  # before exposure: CUPED's covariate, never the metric
            rows.append({"unit_id": unit, "event": "purchase", "value": 3.0, "ts": ts - 60})
    store.write_outcomes(rows)


def _config(**decision: Any) -> ModelConfig:
    return ModelConfig.model_validate(
        {
            "experiment": {"name": "m-ab", "strategy": "ab"},
            "metrics": METRICS,
            "decision": {"min_sample_per_arm": 500, **decision},
        }
    )


def test_verdict_on_primary_metric(ab_log: Callable[..., EventStore]) -> None:
    store = ab_log(3000, 3000, 0.80, 0.80)  # same model quality
    _write_outcomes(store, {"champion": 0.20, "challenger": 0.30}, {"champion": 0, "challenger": 0})
    con = store.connect()
    try:
        (quality,) = analyze_model(con, "m", model_config=_config())
        (on_conversion,) = analyze_model(
            con, "m", model_config=_config(primary_metric="conversion", cuped=True)
        )
        (plain,) = analyze_model(
            con, "m", model_config=ModelConfig.model_validate(
                {"experiment": {"name": "m-ab", "strategy": "ab"},
                 "decision": {"min_sample_per_arm": 500}}
            ),
        )  # fmt: skip
    finally:
        con.close()
    # Primary unset: today's verdict (quality), plus the metrics list.
    assert quality.decision == plain.decision == "continue"
    assert quality.verdict == plain.verdict
    assert plain.to_dict()["metrics"] == []
    rows = {r["name"]: r for r in quality.to_dict()["metrics"]}
    assert set(rows) == set(METRICS) and all(r["arm"] == "challenger" for r in rows.values())
    assert rows["conversion"]["estimate"] > 0.05
    # Decided on conversion: promote, the verdict's primary is the metric's test.
    assert on_conversion.decision == "promote"
    assert on_conversion.decided_on == "conversion"
    assert on_conversion.verdict.primary is not None
    assert on_conversion.verdict.primary.estimate > 0.05
    conv = on_conversion.metrics.result("conversion")
    assert conv.role == "primary" and conv.cuped is not None
    assert conv.cuped["variance_reduction"] >= 0.0


def test_guardrail_metric_breach_rolls_back(ab_log: Callable[..., EventStore]) -> None:
    store = ab_log(3000, 3000, 0.80, 0.80)
    _write_outcomes(
        store, {"champion": 0.20, "challenger": 0.30}, {"champion": 0.01, "challenger": 0.08}
    )
    config = _config(
        primary_metric="conversion",
        guardrail_metrics=[{"metric": "chargebacks", "max_increase": 0.01}],
    )
    con = store.connect()
    try:
        (analysis,) = analyze_model(con, "m", model_config=config)
    finally:
        con.close()
    assert analysis.decision == "rollback"
    crit = {c.name: c for c in analysis.criteria}
    assert not crit["guardrail_metric:chargebacks"].met
    assert crit["primary_improvement"].met  # conversion was better, the guardrail vetoed
    row = analysis.metrics.result("chargebacks")
    assert row.role == "guardrail" and row.guardrail["status"] == "breached"


def test_cli_json_and_report_with_metrics(
    ab_log: Callable[..., EventStore], tmp_path: Path
) -> None:
    store = ab_log(2000, 2000, 0.80, 0.80)
    _write_outcomes(store, {"champion": 0.2, "challenger": 0.2}, {"champion": 0, "challenger": 0})
    home = HomeConfig.model_validate(
        {"models": {"m": _config(primary_metric="revenue").model_dump(exclude_unset=True)}}
    )
    (store.home / "arbiter.yaml").write_text(dump_config(home), encoding="utf-8")
    html = tmp_path / "report.html"
    result = runner.invoke(
        app, ["analyze", "--home", str(store.home), "--model", "m", "--json", "--html", str(html)]
    )
    assert result.exit_code == 0, (result.output, result.exception)
    (exp,) = json.loads(result.stdout)["experiments"]
    metrics = {m["name"]: m for m in exp["metrics"]}
    assert set(metrics) == set(METRICS)
    for m in metrics.values():
        assert {"name", "arm", "estimate", "ci_low", "ci_high", "p_value", "relative_lift",
                "arms", "role", "adjusted_p_value", "cuped"} <= set(m)  # fmt: skip
        assert set(m["arms"]) == {"champion", "challenger"}
        assert m["arms"]["champion"]["units"] > 1500
    assert metrics["revenue"]["role"] == "primary"
    assert exp["decided_on"] == "revenue"
    page = html.read_text(encoding="utf-8")
    assert "Business metrics" in page and "revenue_per_purchase" in page
    text = runner.invoke(app, ["analyze", "--home", str(store.home), "--model", "m", "--no-html"])
    assert text.exit_code == 0, (text.output, text.exception)
    assert "metrics per unit" in text.stdout and "[primary]" in text.stdout


def test_multiarm_metrics_and_verdict(store: EventStore, rng: np.random.Generator) -> None:
    """A/B/n: metrics for every challenger; the verdict on the primary metric, a guardrail
    metric breached by one challenger rolls that one back."""
    n = 9000
    arm = rng.choice(np.array(["champion", "b", "c"]), n)
    y = rng.integers(0, 2, n)
    columns = {
        "request_id": [f"r{i}" for i in range(n)],
        "experiment": ["m-ab"] * n,
        "strategy": ["ab"] * n,
        "unit_id": [f"u{i}" for i in range(n)],
        "arm": arm,
        "alias": arm,
        "prediction": y.astype(str),
        "prediction_num": y.astype(float),
    }
    write_log(store, columns, y)
    _write_outcomes(
        store,
        {"champion": 0.20, "b": 0.20, "c": 0.30},
        {"champion": 0.01, "b": 0.08, "c": 0.01},
    )
    config = ModelConfig.model_validate(
        {
            "experiment": {
                "name": "m-ab",
                "strategy": "ab",
                "challengers": [{"alias": "b", "share": 1 / 3}, {"alias": "c", "share": 1 / 3}],
            },
            "metrics": METRICS,
            "decision": {
                "min_sample_per_arm": 500,
                "primary_metric": "conversion",
                "guardrail_metrics": [{"metric": "chargebacks", "max_increase": 0.01}],
            },
        }
    )
    con = store.connect()
    try:
        (analysis,) = analyze_model(con, "m", model_config=config)
    finally:
        con.close()
    rows = analysis.to_dict()["metrics"]
    assert {(r["name"], r["arm"]) for r in rows} == {
        (name, arm) for name in METRICS for arm in ("b", "c")
    }
    assert analysis.decision == "rollback" and analysis.verdict.rolled_back == ("b",)
    names = {c.name for c in analysis.criteria}
    assert "guardrail_metric:chargebacks:b" in names
    assert analysis.metrics.result("conversion", "c").estimate > 0.05
