"""deploy/prometheus/alerts.yml and deploy/grafana/arbiter.json, checked by Prometheus' own tool.

``promtool`` (Debian's ``prometheus`` package; ``make test`` installs it) parses the rules,
runs their unit tests, and parses every PromQL expression of the Grafana dashboard (written
into a rules file as recording rules). Which metrics those expressions use is checked
against a real gateway's /metrics in test_monitoring.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "arbiter.json"
METRIC = re.compile(r"\barbiter_[a-z0-9_]+\b")
#: Grafana's variables, replaced by what Prometheus would get.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$model": ".*", "${datasource}": "prometheus"}


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, (
        "promtool is missing: `make test` installs it (apt-get install prometheus); the rule "
        "checks do not skip"
    )
    return found


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [promtool(), *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def dashboard_expressions() -> list[str]:
    """Every PromQL expression of the dashboard: panel targets and annotations."""
    doc = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    exprs += [a["expr"] for a in doc["annotations"]["list"] if "expr" in a]
    return exprs


def rule_expressions() -> list[str]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [r["expr"] for g in doc["groups"] for r in g["rules"]]


def metric_names(exprs: list[str]) -> set[str]:
    return {m for e in exprs for m in METRIC.findall(e)}


def test_alert_rules_pass_promtool_check_and_their_unit_tests() -> None:
    assert "SUCCESS: 9 rules found" in _run("check", "rules", RULES)
    _run("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    names = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    # the issue's five, plus the gateway's own health and the alerts' dead letters
    assert {"ArbiterHighErrorRate", "ArbiterHighLatencyP99", "ArbiterCanaryRolledBack",
            "ArbiterDriftDetected", "ArbiterSampleRatioMismatch"} <= names  # fmt: skip


def test_a_broken_rule_fails_promtool(tmp_path: Path) -> None:
    """The check can fail: a typo in PromQL is reported."""
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "groups:\n- name: x\n  rules:\n  - alert: X\n    expr: sum by (model (rate(x[5m]))\n"
    )
    done = subprocess.run([promtool(), "check", "rules", str(bad)], capture_output=True)
    assert done.returncode != 0


def test_dashboard_is_valid_json_whose_expressions_parse(tmp_path: Path) -> None:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert doc["uid"] and doc["schemaVersion"] >= 36
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    exprs = dashboard_expressions()
    assert len(exprs) >= 15 and all(METRIC.search(e) for e in exprs)
    rules = []
    for i, expr in enumerate(exprs):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, expr  # an unknown Grafana variable
        rules.append({"record": f"grafana:expr_{i}", "expr": expr})
    as_rules = tmp_path / "dashboard-rules.yml"
    as_rules.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert f"SUCCESS: {len(exprs)} rules found" in _run("check", "rules", as_rules)
