"""The closed loop as an Airflow 3 DAG (TaskFlow API), one task per step.

::

    check_drift ─┬─> retrain ─> gate ─(passed)─> shadow_test ─> decide
     (branch)    └─> no_drift     (short-circuit)

Each task runs ``arbiter loop run --stop-after STEP --json`` in a subprocess. The decision
record (``HOME/loop/cycles``) carries the state between tasks and between DAG runs: a shadow
test still waiting for labels is checked again by the next run, which resumes the open cycle
(its drift and retrain tasks find their steps done and return at once). Calling the CLI keeps
Airflow and arbiter's dependencies apart: the Airflow workers need only this module (standard
library and ``airflow.sdk``), and ``arbiter`` may live in another virtual environment.

Example ``dags/arbiter_fraud.py``::

    from arbiter.integrations.airflow import build_dag

    dag = build_dag(
        model="fraud",
        home="/srv/arbiter-home",
        schedule="@daily",
        data="/data/fraud/train.parquet",
        label="is_fraud",
        holdout="/data/fraud/holdout.parquet",
    )

Trigger with ``{"force": true}`` as the run's configuration to retrain without drift.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import dag, get_current_context, task

log = logging.getLogger(__name__)

#: Task ids, for branching and for tests.
CHECK_DRIFT = "check_drift"
NO_DRIFT = "no_drift"
RETRAIN = "retrain"
GATE = "gate"
SHADOW_TEST = "shadow_test"
DECIDE = "decide"


def loop_command(
    arbiter: Sequence[str],
    home: str | Path,
    model: str,
    options: Sequence[str] = (),
    *,
    stop_after: str | None = None,
    force: bool = False,
) -> list[str]:
    """The ``loop run`` command line a task runs."""
    cmd = [*arbiter, "run", "--home", str(home), "--model", model, *options, "--json"]
    if stop_after is not None:
        cmd += ["--stop-after", stop_after]
    if force:
        cmd.append("--force")
    return cmd


def run_loop(cmd: Sequence[str], env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run one ``loop run`` command; return its JSON output, or raise with its error line."""
    log.info("running %s", " ".join(cmd))
    done = subprocess.run(list(cmd), capture_output=True, text=True, env=env, check=False)
    if done.stderr:
        log.info("%s", done.stderr.strip())
    if done.returncode != 0:
        raise RuntimeError(
            f"`{' '.join(cmd)}` exited with {done.returncode}: "
            f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'no output'}"
        )
    out: dict[str, Any] = json.loads(done.stdout)
    cycle = out["cycle"]
    log.info(
        "cycle %s: %s%s; ran %s; next: %s",
        cycle["cycle_id"],
        cycle["status"],
        f" ({cycle['verdict']})" if cycle["verdict"] else "",
        ", ".join(out["ran"]) or "nothing",
        out["next"],
    )
    return out


def _summary(out: dict[str, Any]) -> dict[str, Any]:
    # What goes to XCom: small, and enough to read the run in the UI.
    cycle = out["cycle"]
    return {
        "cycle_id": cycle["cycle_id"],
        "status": cycle["status"],
        "verdict": cycle["verdict"],
        "reason": cycle["reason"],
        "candidate_version": cycle["candidate_version"],
        "ran": out["ran"],
        "next": out["next"],
    }


def build_dag(
    *,
    model: str,
    home: str | Path,
    dag_id: str | None = None,
    schedule: Any = None,
    start_date: datetime | None = None,
    arbiter: Sequence[str] = ("arbiter", "loop"),
    data: str | Path | None = None,
    label: str | None = None,
    holdout: str | Path | None = None,
    options: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    tags: Sequence[str] = ("arbiter",),
    **dag_kwargs: Any,
) -> Any:
    """Build the loop's DAG for one model.

    Parameters
    ----------
    model : str
        Registered model name.
    home : path
        The arbiter home (on a disk every worker sees).
    dag_id : str, optional
        Default ``arbiter_loop_<model>``.
    schedule, start_date, tags, **dag_kwargs
        Passed to ``airflow.sdk.dag`` (``catchup`` defaults to False).
    arbiter : sequence of str
        The command prefix of the loop commands, default ``("arbiter", "loop")``; for an
        arbiter in another virtual environment ``("/opt/arbiter/.venv/bin/arbiter", "loop")``
        or ``("/opt/arbiter/.venv/bin/python", "-m", "arbiter.loop")``.
    data, label, holdout : optional
        Training file, label column and holdout file (``loop run --data/--label/--holdout``).
    options : sequence of str
        More ``loop run`` options (``["--trials", "50", "--max-wait", "3d"]``).
    env : mapping, optional
        Environment of the subprocesses (default: the worker's).

    Returns
    -------
    airflow.sdk.DAG
    """
    opts = list(options)
    for flag, value in (("--data", data), ("--label", label), ("--holdout", holdout)):
        if value is not None:
            opts += [flag, str(value)]
    prefix = tuple(arbiter)
    env_ = None if env is None else dict(env)

    def step(stop_after: str | None, *, force: bool = False) -> dict[str, Any]:
        return run_loop(
            loop_command(prefix, home, model, opts, stop_after=stop_after, force=force), env_
        )

    dag_kwargs.setdefault("catchup", False)

    @dag(
        dag_id=dag_id or f"arbiter_loop_{model}",
        schedule=schedule,
        start_date=start_date,
        tags=list(tags),
        params={"force": False},
        doc_md=__doc__,
        **dag_kwargs,
    )
    def arbiter_loop() -> None:
        @task.branch(task_id=CHECK_DRIFT)
        def check_drift() -> str:
            context = get_current_context()
            out = step("drift", force=bool(context["params"].get("force")))
            context["ti"].xcom_push(key="cycle", value=_summary(out))
            # A finished cycle here ended at the drift step: nothing to retrain.
            return NO_DRIFT if out["cycle"]["status"] == "finished" else RETRAIN

        @task(task_id=NO_DRIFT)
        def no_drift() -> dict[str, Any]:
            # The cycle is closed (verdict no_action); running the loop again would open
            # a new one, so report the branch's record instead.
            summary: dict[str, Any] = get_current_context()["ti"].xcom_pull(
                task_ids=CHECK_DRIFT, key="cycle"
            )
            log.info("no retrain: %s", summary.get("reason"))
            return summary

        @task(task_id=RETRAIN)
        def retrain() -> dict[str, Any]:
            return _summary(step("retrain"))

        @task.short_circuit(task_id=GATE)
        def gate() -> bool:
            out = step("gate")
            gate_step = out["cycle"]["steps"].get("gate") or {}
            passed = bool(gate_step.get("evidence", {}).get("passed"))
            if not passed:
                step(None)  # archive the candidate and close the cycle
            return passed

        @task(task_id=SHADOW_TEST)
        def shadow_test() -> dict[str, Any]:
            return _summary(step("online"))

        @task(task_id=DECIDE)
        def decide() -> dict[str, Any]:
            return _summary(step(None))

        branch = check_drift()
        branch >> no_drift()
        branch >> retrain() >> gate() >> shadow_test() >> decide()

    return arbiter_loop()


__all__ = [
    "CHECK_DRIFT",
    "DECIDE",
    "GATE",
    "NO_DRIFT",
    "RETRAIN",
    "SHADOW_TEST",
    "build_dag",
    "loop_command",
    "run_loop",
]
