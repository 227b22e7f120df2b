"""The loop's Airflow DAG, run with ``dag.test()`` by a real Airflow 3.

Airflow runs in a subprocess with its own ``AIRFLOW_HOME`` (a temporary folder, migrated
once), so its settings, logging and database never touch the test process. Its interpreter is
``ARBITER_AIRFLOW_PYTHON`` if set, else this one if it can import Airflow (``arbiter[airflow]``
installed here), else ``.venv-airflow/bin/python``; without any, the tests are skipped. The
DAG's tasks call this interpreter's ``python -m arbiter.loop``, as a deployment whose Airflow
and arbiter live in different environments would.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from arbiter.home import Home
from arbiter.loop import CycleStore
from tests.loop.conftest import LABEL, MODEL, SEARCH, LoopData, logged_rows, send, wait_for

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration

# A DAG file as users write it; dag.test() finds the DAG by parsing the DAGs folder.
DAG_FILE = """
import json
from arbiter.integrations.airflow import build_dag

dag = build_dag(**json.loads({config!r}))

if __name__ == "__main__":
    run = dag.test()
    states = {{ti.task_id: str(getattr(ti.state, "value", ti.state))
              for ti in run.get_task_instances()}}
    run_state = str(getattr(run.state, "value", run.state))
    print("STATES=" + json.dumps({{"run": run_state, "tasks": states}}))
"""


def _airflow_python() -> str | None:
    configured = os.environ.get("ARBITER_AIRFLOW_PYTHON")
    if configured:
        return configured
    if importlib.util.find_spec("airflow") is not None:
        return sys.executable
    separate = REPO / ".venv-airflow" / "bin" / "python"
    return str(separate) if separate.exists() else None


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Callable[[dict[str, Any]], dict]:
    """Run the DAG built from a config with ``dag.test()``; return the task states."""
    python = _airflow_python()
    if python is None and os.environ.get("ARBITER_REQUIRE_AIRFLOW"):
        pytest.fail("ARBITER_REQUIRE_AIRFLOW is set (make test) but no Airflow was found")
    if python is None:
        pytest.skip(
            "Airflow is not installed: `pip install -e '.[airflow]'`, or create .venv-airflow "
            "(see docs/loop.md), or set ARBITER_AIRFLOW_PYTHON"
        )
    root = tmp_path_factory.mktemp("airflow-home")
    (root / "dags").mkdir()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(root),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        # arbiter.integrations from this checkout (an Airflow-only venv lacks arbiter), and the
        # tests package for the tiny retrain search the tasks' CLI imports.
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
    }
    migrate = subprocess.run(
        [python, "-m", "airflow", "db", "migrate"], env=env, capture_output=True, text=True
    )
    assert migrate.returncode == 0, migrate.stderr[-3000:]

    def run(config: dict[str, Any]) -> dict:
        dag_file = root / "dags" / f"{config['dag_id']}.py"
        dag_file.write_text(DAG_FILE.format(config=json.dumps(config)), encoding="utf-8")
        done = subprocess.run(
            [python, str(dag_file)],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("STATES=")]
        assert done.returncode == 0 and lines, (done.stdout[-3000:], done.stderr[-6000:])
        return json.loads(lines[-1].removeprefix("STATES="))

    return run


def _config(home: Home, data: LoopData, dag_id: str) -> dict[str, Any]:
    return {
        "dag_id": dag_id,
        "model": MODEL,
        "home": str(home.root),
        "arbiter": [sys.executable, "-m", "arbiter.loop"],
        "data": str(data.train),
        "label": LABEL,
        "holdout": str(data.holdout),
        "options": ["--trials", "1", "--search", SEARCH, "--traffic-window", "none"],
    }


def test_not_drifted_run_skips_the_retrain(
    airflow: Callable[[dict[str, Any]], dict],
    loop_home: Callable[..., Home],
    loop_template: LoopData,
) -> None:
    home = loop_home()  # no traffic yet: nothing has drifted
    result = airflow(_config(home, loop_template, "arbiter_loop_quiet"))
    assert result["run"] == "success"
    assert result["tasks"] == {
        "check_drift": "success",
        "no_drift": "success",
        "retrain": "skipped",
        "gate": "skipped",
        "shadow_test": "skipped",
        "decide": "skipped",
    }
    (record,) = CycleStore(home.root).records(MODEL)
    assert record.verdict == "no_action"


def test_drifted_run_retrains_gates_and_starts_the_shadow_test(
    airflow: Callable[[dict[str, Any]], dict],
    gateway: tuple[str, Home],
    loop_template: LoopData,
) -> None:
    url, home = gateway
    send(url, n=300, seed=13, shift=1.0, labels=False)
    wait_for(lambda: logged_rows(home, role="served") >= 300, what="served rows")
    result = airflow(_config(home, loop_template, "arbiter_loop_drifted"))
    assert result["run"] == "success"
    assert result["tasks"] == {
        "check_drift": "success",
        "no_drift": "skipped",
        "retrain": "success",
        "gate": "success",
        "shadow_test": "success",
        "decide": "success",
    }
    record = CycleStore(home.root).open_cycle(MODEL)
    assert record is not None and record.status == "waiting"
    assert record.evidence("gate")["passed"] is True
    assert record.evidence("shadow")["challenger_version"] == "3"
