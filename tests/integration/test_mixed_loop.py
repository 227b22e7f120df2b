"""The closed loop on the mixed-type demo table, end to end with a real gateway.

drift (categorical, missing-rate and text signals) → retrain (raw-table pipelines) → offline
gate → shadow test on raw JSON rows with strings and nulls → promotion. Waits for evidence
(the loaded candidate, the logged rows, the loop's decision), never for a fixed time.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from arbiter.demo.mixed_data import NEW_COUNTRY, NEW_MERCHANT
from arbiter.demo.mixed_scenario import MixedDemoOptions, run_mixed_demo
from arbiter.loop import CycleStore

# Reduced sizes: a few hundred labelled rows per side is enough here because the drifted month
# hurts the champion a lot (new category, new scam words it cannot read). The bounds (rounds,
# load timeouts) are for a saturated machine, not the plan; shadows run in threads at normal
# priority (see tests/demo/test_drift_scenario.py for why).
SMALL = MixedDemoOptions(
    requests=600,
    online_requests=600,
    max_online_rounds=8,
    train_rows=6_000,
    holdout_rows=3_000,
    retrain_rows=3_000,
    trials=2,
    cv=3,
    min_sample_per_arm=400,
    shadow_executor="thread",
)
#: A hang guard: on a quiet 2-core machine the test takes about a minute; beside eight other
#: test runs (load average ~19) the retrain alone took 12 minutes.
LOADED_TIMEOUT_S = 1_800


@pytest.mark.integration
@pytest.mark.timeout(LOADED_TIMEOUT_S)
def test_mixed_table_drifts_retrains_gates_and_promotes(tmp_path: Path) -> None:
    out = io.StringIO()
    try:
        summary = run_mixed_demo(tmp_path / "home", SMALL, console=Console(file=out, width=200))
    finally:
        print(out.getvalue())  # each step with its seconds, shown when the test fails

    data = summary["data"]
    assert data["kinds"]["merchant_category"] == "categorical"
    assert data["kinds"]["customer_note"] == "text"
    assert 0.02 < data["label_rate"] < 0.08 and "declared_income" in data["missing_rate"]

    # Raw rows with strings and nulls were all served.
    traffic = summary["traffic"]
    for part in ("before_shift", "after_shift", *range(len(traffic["online"]))):
        sent = traffic[part] if isinstance(part, str) else traffic["online"][part]
        assert sent["errors"] == 0, (part, sent)

    drift = summary["drift"]
    assert drift["drifted"] is True
    assert {"merchant_category", "country", "declared_income", "customer_note"} <= set(
        drift["drifted_features"]
    )
    columns = {c["column"]: c for c in drift["columns"]}
    assert NEW_MERCHANT in [u["category"] for u in columns["merchant_category"]["unseen"]]
    assert NEW_COUNTRY in [u["category"] for u in columns["country"]["unseen"]]
    assert columns["declared_income"]["signals"]["missing_rate"]["drifted"] is True
    assert columns["customer_note"]["kind"] == "text"
    assert columns["customer_note"]["signals"]["oov_rate"]["drifted"] is True

    versions = summary["versions"]
    assert versions["champion_before"] == "1"
    assert versions["candidate"] == summary["retrain"]["version"] == "2"
    assert summary["retrain"]["n_trials"] == 2
    gate = summary["gate"]
    assert gate["passed"] is True and gate["challenger_score"] > gate["champion_score"]
    assert summary["online"]["decision"] == "promote"
    assert summary["verdict"] == "promoted"
    assert versions["aliases"] == {"champion": "2", "previous": "1"}

    ran = [s["step"] for s in summary["steps"]]
    assert ran[:5] == ["drift", "retrain", "gate", "shadow", "online"]
    assert ran[-2:] == ["online", "promote"]
    (record,) = CycleStore(summary["home"]).records("fraud")
    assert record.verdict == "promoted"
    for key in ("drift_html", "analysis_html"):
        html = Path(summary["reports"][key])
        assert html.read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")
    printed = out.getvalue()
    for text in ("DRIFT", "PASSED", "loop · promote", "drift per column", NEW_MERCHANT):
        assert text in printed
    summary.pop("_analysis")
    json.dumps(summary)  # the CLI's --json output
