"""The same event log analysed by DuckDB, Spark (local[2]) and PostgreSQL gives the same numbers.

One log, built with arbiter's own segment writer (Parquet files in HOME/events) and loaded by
COPY into a fresh PostgreSQL schema with the columns of the PostgreSQL store's contract
(``predictions``, ``feedback`` + ``write_seq``, ``outcomes``). It has what makes the queries
differ if an engine gets a rule wrong: an A/B test with sticky units, requests without a unit
id, errors, forced rows and fallback rows; batch requests (``row_index`` > 0); a shadow
experiment (paired rows); a regression model; labels posted twice, two of them in the same
microsecond in different segments (the later segment must win); outcomes; feature JSON for
drift windows.

Every engine runs the *same* functions of :mod:`arbiter.analysis` and
:mod:`arbiter.events.window`: the numbers must agree to 1e-9.

One SparkSession for the module (local[2], 2 shuffle partitions, no UI): Spark start-up is
the slow part.
"""

from __future__ import annotations

import dataclasses
import json
import math
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from arbiter.analysis import analyze_model
from arbiter.analysis.aggregate import aggregate_experiment, arm_traffic
from arbiter.analysis.metrics import metric_statistics_at
from arbiter.config import ModelConfig
from arbiter.events import EventStore
from arbiter.events.engines import EngineError, open_engine
from arbiter.events.engines.dialect import translate
from arbiter.events.exact_quantiles import sorted_quantiles
from arbiter.events.query import Scope
from arbiter.events.schema import FEEDBACK_SCHEMA, OUTCOMES_SCHEMA, PREDICTIONS_SCHEMA
from arbiter.events.segments import write_segment
from arbiter.events.window import read_window
from arbiter.report.summary import summarize

psycopg = pytest.importorskip("psycopg")

# Spark start-up plus ~35 planned queries: minutes on a busy 2-core box, far less on CI.
pytestmark = pytest.mark.timeout(900)

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
TOL = 1e-9


# --- the log ----------------------------------------------------------------------------------


def _prediction(**row: Any) -> dict[str, Any]:
    base = dict.fromkeys(PREDICTIONS_SCHEMA.names)
    base.update(protocol="arbiter", forced=False, unit_random=row.get("unit_id") is None)
    base.update(row)
    return base


def build_log(seed: int = 7) -> dict[str, list[pa.Table]]:
    """Segments of each table (a list of Arrow tables: one Parquet file each)."""
    rng = np.random.default_rng(seed)
    preds: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    outcomes: list[dict[str, Any]] = []

    def features() -> str:
        return json.dumps(
            {
                "amount": round(float(rng.lognormal(3, 1)), 3),
                "country": str(rng.choice(["fr", "de", "us"])),
                "age": int(rng.integers(18, 80)),
            }
        )

    # fraud / ab-1: sticky units, champion 60 %, challenger 40 %, batches of 1-3 rows.
    units = [f"user-{i}" for i in range(120)]
    arm_of = {u: ("challenger" if rng.random() < 0.4 else "champion") for u in units}
    for i in range(700):
        unit = None if i % 9 == 0 else str(rng.choice(units))
        arm = arm_of.get(unit or "", "challenger" if rng.random() < 0.4 else "champion")
        rid = f"ab-{i:05d}"
        ts = T0 + timedelta(seconds=int(i * 11), microseconds=int(rng.integers(0, 999_999)))
        err = "boom" if rng.random() < (0.04 if arm == "challenger" else 0.02) else None
        latency = float(rng.gamma(4, 5 if arm == "champion" else 6))
        forced = i % 50 == 0
        for r in range(int(rng.integers(1, 4))):
            truth = int(rng.random() < 0.3)
            good = rng.random() < (0.85 if arm == "challenger" else 0.8)
            pred = truth if good else 1 - truth
            score = float(np.clip(pred * 0.6 + rng.random() * 0.4, 0, 1))
            preds.append(
                _prediction(
                    request_id=rid, row_index=r, ts=ts, model="fraud", experiment="ab-1",
                    strategy="ab", unit_id=unit, arm=arm, role="served", alias=arm,
                    version="2" if arm == "challenger" else "1",
                    prediction=None if err else str(pred),
                    prediction_num=None if err else float(pred),
                    score=None if err else score,
                    confidence=None if err else max(score, 1 - score),
                    probabilities=None, latency_ms=latency, error=err, features=features(),
                    forced=forced,
                )
            )  # fmt: skip
            if rng.random() < 0.8:
                labels.append(
                    {"request_id": rid, "row_index": r, "label": str(truth),
                     "label_num": float(truth), "ts": ts + timedelta(minutes=5)}
                )  # fmt: skip
        if i % 97 == 5:  # a fallback row: the champion stood in for a failed challenger
            preds.append(
                _prediction(
                    request_id=rid, row_index=0, ts=ts, model="fraud", experiment="ab-1",
                    strategy="ab", unit_id=unit, arm="champion", role="fallback",
                    alias="champion", version="1", prediction="0", prediction_num=0.0,
                    latency_ms=3.0, features=features(),
                )
            )  # fmt: skip
    # fraud / shadow-1: every request scored by both, the challenger logged only.
    t_shadow = T0 + timedelta(hours=3)
    for i in range(500):
        rid = f"sh-{i:05d}"
        ts = t_shadow + timedelta(seconds=int(i * 7), microseconds=int(rng.integers(0, 999_999)))
        truth = int(rng.random() < 0.35)
        f = features()
        for role, version, acc in (("served", "1", 0.78), ("shadow", "2", 0.83)):
            pred = truth if rng.random() < acc else 1 - truth
            score = float(np.clip(pred * 0.5 + rng.random() * 0.5, 0, 1))
            err = "boom" if role == "shadow" and i % 61 == 0 else None
            preds.append(
                _prediction(
                    request_id=rid, row_index=0, ts=ts, model="fraud", experiment="shadow-1",
                    strategy="shadow", unit_id=f"user-{i % 80}", arm="champion", role=role,
                    alias="champion" if role == "served" else "challenger", version=version,
                    prediction=None if err else str(pred),
                    prediction_num=None if err else float(pred),
                    score=None if err else score,
                    confidence=None if err else max(score, 1 - score),
                    latency_ms=float(rng.gamma(3, 4)), error=err, features=f,
                )
            )  # fmt: skip
        if rng.random() < 0.85:
            labels.append(
                {"request_id": rid, "row_index": 0, "label": str(truth),
                 "label_num": float(truth), "ts": ts + timedelta(minutes=2)}
            )  # fmt: skip
    # price / reg-ab: a regressor (numeric predictions, no probabilities).
    for i in range(400):
        rid = f"rg-{i:05d}"
        unit = f"shop-{i % 50}"
        arm = "challenger" if hash(unit) % 2 else "champion"
        arm = "challenger" if int(unit.split("-")[1]) % 2 else "champion"
        ts = T0 + timedelta(seconds=int(i * 13), microseconds=int(rng.integers(0, 999_999)))
        y = float(rng.normal(100, 20))
        noise = 9.0 if arm == "champion" else 7.0
        pred = round(y + float(rng.normal(0, noise)), 4)
        preds.append(
            _prediction(
                request_id=rid, row_index=0, ts=ts, model="price", experiment="reg-ab",
                strategy="ab", unit_id=unit, arm=arm, role="served", alias=arm,
                version="4" if arm == "challenger" else "3", prediction=repr(pred),
                prediction_num=pred, latency_ms=float(rng.gamma(2, 3)), features=features(),
            )
        )  # fmt: skip
        if rng.random() < 0.9:
            labels.append(
                {"request_id": rid, "row_index": 0, "label": repr(round(y, 4)),
                 "label_num": round(y, 4), "ts": ts + timedelta(hours=1)}
            )  # fmt: skip
    # Corrections: a later label for some rows; and same-ts duplicates whose later write wins.
    first_batch = labels[: len(labels) // 2]
    second_batch = labels[len(labels) // 2 :]
    corrections, ties = [], []
    for k, lab in enumerate(labels[::17]):
        flipped = {"0": "1", "1": "0"}.get(lab["label"])
        if flipped is None:
            continue
        if k % 2:
            corrections.append(
                {**lab, "label": flipped, "label_num": float(flipped),
                 "ts": lab["ts"] + timedelta(minutes=30)}
            )  # fmt: skip
        else:  # same microsecond: the later segment must win
            ties.append({**lab, "label": flipped, "label_num": float(flipped)})
    for unit in units[:60]:
        for j in range(int(rng.integers(0, 4))):
            outcomes.append(
                {"unit_id": unit, "event": "purchase", "value": float(rng.gamma(2, 20)),
                 "ts": T0 + timedelta(minutes=int(rng.integers(0, 120)), seconds=j),
                 "request_id": None}
            )  # fmt: skip

    def table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
        return pa.Table.from_pylist(rows, schema=schema)

    half = len(preds) // 2
    return {
        "predictions": [
            table(preds[:half], PREDICTIONS_SCHEMA),
            table(preds[half:], PREDICTIONS_SCHEMA),
        ],
        "feedback": [
            table(b, FEEDBACK_SCHEMA) for b in (first_batch, second_batch, corrections, ties)
        ],
        "outcomes": [table(outcomes, OUTCOMES_SCHEMA)],
    }


# --- engines ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def log() -> dict[str, list[pa.Table]]:
    return build_log()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, log: dict[str, list[pa.Table]]) -> EventStore:
    home = tmp_path_factory.mktemp("engines-home")
    es = EventStore(home)
    for table, segments in log.items():
        for seg in segments:  # in order: segment names sort in write order
            write_segment(es.table_dir(table), seg)  # type: ignore[arg-type]
    return es


_PG_TYPES = {
    "string": "text",
    "int32": "integer",
    "int64": "bigint",
    "double": "double precision",
    "bool": "boolean",
    "timestamp[us, tz=UTC]": "timestamptz",
}


def load_postgres(conn: Any, schema: str, log: dict[str, list[pa.Table]]) -> None:
    """Create the PostgreSQL store's base tables in ``schema`` and COPY the log into them.

    The columns and ``feedback.write_seq`` of the contract with the PostgreSQL store
    (arbiter.events.postgres_schema); ``write_seq`` counts rows in write order.
    """
    from psycopg import sql

    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        for name, segments in log.items():
            arrow_schema = segments[0].schema
            cols = [
                sql.SQL("{} {}").format(sql.Identifier(f.name), sql.SQL(_PG_TYPES[str(f.type)]))
                for f in arrow_schema
            ]
            if name == "feedback":
                cols.append(sql.SQL("write_seq bigint GENERATED ALWAYS AS IDENTITY"))
            cur.execute(
                sql.SQL("CREATE TABLE {} ({})").format(
                    sql.Identifier(schema, name), sql.SQL(", ").join(cols)
                )
            )
            names = sql.SQL(", ").join(map(sql.Identifier, arrow_schema.names))
            copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(schema, name), names
            )
            for seg in segments:
                with cur.copy(copy_sql) as copy:
                    for row in seg.to_pylist():
                        copy.write_row(tuple(row[n] for n in arrow_schema.names))


@pytest.fixture(scope="module")
def pg_url(log: dict[str, list[pa.Table]]) -> Iterator[str]:
    schema = f"engines_{uuid.uuid4().hex[:10]}"
    try:
        conn = psycopg.connect(PG_URL, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at 127.0.0.1:5432 (db test) is required: {exc}")
    try:
        load_postgres(conn, schema, log)
        yield f"{PG_URL}?schema={schema}"
    finally:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.close()


# A few thousand rows: Spark's per-query overhead is the cost, not the data. Interpreted
# plans instead of compiling Java for every query, and no adaptive re-planning.
SMALL_DATA_CONF = {
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.adaptive.enabled": "false",
}
COLUMNS = {"amount": "numeric", "age": "numeric", "country": "categorical"}
WINDOWS: dict[str, dict[str, Any]] = {
    "window": {"window": timedelta(days=2)},
    "last": {"last": 250},
    "version": {"version": "2"},
}
LATEST_SQL = (
    "SELECT request_id, row_index, label, label_num, label_ts FROM latest_feedback "
    "ORDER BY request_id, row_index"
)
OUTCOME_SQL = (
    "SELECT p.arm, count(*), sum(o.value), sum(o.value * o.value) FROM outcomes AS o "
    "JOIN (SELECT unit_id, any_value(arm) AS arm FROM served WHERE model = $model "
    "AND experiment = $experiment AND unit_id IS NOT NULL GROUP BY unit_id) AS p "
    "USING (unit_id) WHERE o.event = $event GROUP BY p.arm ORDER BY p.arm"
)

# Groups that make a rank-based quantile go wrong if it is off by one: one value, ties, NULLs
# among values, only NULLs (quantile_cont gives NULL), two values; levels at the ends and
# between ranks.
EDGE_SQL = """
SELECT g, CAST(x AS DOUBLE) AS x FROM (VALUES
    ('one', 4.5), ('ties', 2.0), ('ties', 2.0), ('ties', 1.0), ('ties', 2.0), ('ties', 7.0),
    ('nulls', NULL), ('nulls', 3.0), ('nulls', NULL), ('nulls', 1.0), ('nulls', 8.25),
    ('only-null', NULL), ('two', 1.0), ('two', 3.0)
) AS t(g, x)
"""
EDGE_LEVELS = (0.0, 0.01, 0.25, 1 / 3, 0.5, 0.9, 0.99, 1.0)

NOW = T0 + timedelta(days=1)

# Label metrics at several looks: one windowed query per metric (label_sums_at), the path of
# an A/B's over-time quality series, which uses window functions each engine spells its way.
LABEL_LOOKS_CONFIG = ModelConfig.model_validate(
    {
        "metrics": {
            "accuracy": {"label_metric": "accuracy"},
            "positive_rate": {"label_metric": "class_rate"},
        }
    }
)
LABEL_LOOK_ENDS = [T0 + timedelta(minutes=m) for m in (20, 45, 90)] + [None]


def _label_looks(con: Any) -> list[dict[str, Any]]:
    looks = metric_statistics_at(con, Scope("fraud", "ab-1"), LABEL_LOOKS_CONFIG, LABEL_LOOK_ENDS)
    return [{name: dataclasses.asdict(data) for name, data in look.items()} for look in looks]


# What the tests compare, by name: each computed once per engine, on first use. Spark's cost
# is start-up and per-query planning (seconds each on a busy 2-core box), not the data: the
# default run asks Spark for the A/B + shadow analysis, labels, outcomes and drift windows
# (~35 queries); the rest (regressor, raw aggregates, report summary) is marked slow for Spark.
COMPUTE: dict[str, Any] = {
    "analyze_fraud": lambda con: [a.to_dict() for a in analyze_model(con, "fraud")],
    "analyze_price": lambda con: [a.to_dict() for a in analyze_model(con, "price")],
    "label_looks": _label_looks,
    "traffic": lambda con: {k: v.to_dict() for k, v in arm_traffic(con, "fraud", "ab-1").items()},
    "ab": lambda con: aggregate_experiment(con, "fraud", "ab-1"),
    "shadow": lambda con: aggregate_experiment(con, "fraud", "shadow-1"),
    "latest": lambda con: con.execute(LATEST_SQL).fetchall(),
    "labeled": lambda con: con.execute(
        "SELECT count(*), count(label) FROM labeled WHERE model = $model", {"model": "fraud"}
    ).fetchone(),
    "outcomes": lambda con: con.execute(
        OUTCOME_SQL, {"model": "fraud", "experiment": "ab-1", "event": "purchase"}
    ).fetchall(),
    "summary": lambda con: summarize(con, "fraud", "ab-1"),
    "windows": lambda con: {
        name: read_window(con, "fraud", COLUMNS, now=NOW, **kwargs)
        for name, kwargs in WINDOWS.items()
    },
    "edge_quantiles": lambda con: {
        k[0]: q for k, q in sorted_quantiles(con, EDGE_SQL, ("g",), "x", EDGE_LEVELS).items()
    },
    "quoted": lambda con: con.execute(
        "SELECT count(*) FROM served WHERE model = $model", {"model": "fr'aud"}
    ).fetchone(),
}


class Results:
    """``results[engine, name]``: COMPUTE[name] on one open connection per engine."""

    def __init__(self, store: EventStore, pg_url: str) -> None:
        self.store, self.pg_url = store, pg_url
        self.connections: dict[str, Any] = {}
        self.values: dict[tuple[str, str], Any] = {}
        self.session: Any = None

    def __getitem__(self, key: tuple[str, str]) -> Any:
        engine, name = key
        if key not in self.values:
            if engine not in self.connections:
                if engine == "spark":
                    from arbiter.events.engines.spark import spark_session

                    self.session = spark_session(
                        "local[2]", shuffle_partitions=1, conf=SMALL_DATA_CONF
                    )
                url = self.pg_url if engine == "postgres" else None
                self.connections[engine] = open_engine(engine, self.store, events_url=url)
            self.values[key] = COMPUTE[name](self.connections[engine])
        return self.values[key]

    def close(self) -> None:
        for con in self.connections.values():
            con.close()
        if self.session is not None:
            self.session.stop()


@pytest.fixture(scope="module")
def results(store: EventStore, pg_url: str) -> Iterator[Results]:
    res = Results(store, pg_url)
    yield res
    res.close()


class Pair:
    """DuckDB's results and another engine's, by name: ``pair["analyze_fraud"]``."""

    def __init__(self, results: Results, engine: str) -> None:
        self.results, self.engine = results, engine

    def __getitem__(self, name: str) -> tuple[Any, Any]:
        return self.results["duckdb", name], self.results[self.engine, name]


@pytest.fixture(params=["spark", "postgres"])
def pair(request: pytest.FixtureRequest, results: Results) -> Pair:
    return Pair(results, request.param)


@pytest.fixture(params=[pytest.param("spark", marks=pytest.mark.slow), "postgres"])
def pair_full(request: pytest.FixtureRequest, results: Results) -> Pair:
    """As ``pair``, for the comparisons Spark runs only in the slow (full) suite."""
    return Pair(results, request.param)


# --- comparison -------------------------------------------------------------------------------


def assert_same(a: Any, b: Any, path: str = "") -> None:
    """Equal structures; numbers equal to :data:`TOL` (relative), NaN equal to NaN."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{path}: keys {set(a) ^ set(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b), f"{path}: {a!r} != {b!r}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, np.ndarray):
        np.testing.assert_allclose(a, b, rtol=TOL, atol=TOL, err_msg=path)
    elif isinstance(a, bool) or a is None or isinstance(a, str):
        assert a == b, f"{path}: {a!r} != {b!r}"
    elif isinstance(a, int | float):
        assert isinstance(b, int | float), f"{path}: {a!r} != {b!r}"
        if math.isnan(a):
            assert math.isnan(b), f"{path}: {a!r} != {b!r}"
        else:
            assert math.isclose(a, b, rel_tol=TOL, abs_tol=TOL), f"{path}: {a!r} != {b!r}"
    elif isinstance(a, datetime):
        assert a == b, f"{path}: {a!r} != {b!r}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


# --- tests ------------------------------------------------------------------------------------


def test_analyze_gives_the_same_verdicts_and_numbers(pair: Pair) -> None:
    duck, other = pair["analyze_fraud"]
    assert [e["experiment"] for e in duck] == ["ab-1", "shadow-1"]
    assert_same(duck, other)


def test_regressor_analysis_agrees(pair_full: Pair) -> None:
    duck, other = pair_full["analyze_price"]
    assert duck[0]["task"] == "regression"
    assert_same(duck, other)


def test_per_arm_and_paired_statistics_agree(pair_full: Pair) -> None:
    assert_same(*pair_full["traffic"])
    ab_duck, ab_other = pair_full["ab"]
    assert ab_duck.traffic["champion"].requests > 100
    assert ab_duck.metric == ab_other.metric
    assert_same(
        {k: dataclasses.asdict(v) for k, v in ab_duck.per_unit.items()},
        {k: dataclasses.asdict(v) for k, v in ab_other.per_unit.items()},
    )
    assert_same(ab_duck.timeseries.to_dict(), ab_other.timeseries.to_dict())
    sh_duck, sh_other = pair_full["shadow"]
    assert sh_duck.agreement == sh_other.agreement
    assert sh_duck.paired.n > 300
    for name in ("ts_us", "correct_a", "correct_b", "y_binary", "score_a", "score_b"):
        assert_same(getattr(sh_duck.paired, name), getattr(sh_other.paired, name), name)
    assert sh_duck.confusion == sh_other.confusion


def test_label_metrics_at_several_looks_agree(pair: Pair) -> None:
    duck, other = pair["label_looks"]
    units = [look["accuracy"]["units"] for look in duck]
    assert 0 < sum(units[0].values()) < sum(units[-1].values()), units  # the looks differ
    assert_same(duck, other)


def test_latest_labels_follow_the_same_tie_break(pair: Pair) -> None:
    duck, other = pair["latest"]
    assert len(duck) > 1000
    assert duck == other
    assert pair["labeled"][0] == pair["labeled"][1]


def test_outcome_joins_agree(pair: Pair) -> None:
    duck, other = pair["outcomes"]
    assert len(duck) == 2
    assert_same(duck, other)


def test_report_summary_agrees(pair_full: Pair) -> None:
    assert_same(*pair_full["summary"])


def test_drift_windows_read_the_same_features(pair: Pair) -> None:
    duck, other = pair["windows"]
    for name in WINDOWS:
        a, b = duck[name], other[name]
        assert a.n == b.n > 200, name
        for column in ("amount", "age"):
            np.testing.assert_allclose(
                np.sort(a.features[column].to_numpy(float)),
                np.sort(b.features[column].to_numpy(float)),
                rtol=TOL,
            )
        assert sorted(a.features["country"]) == sorted(b.features["country"])
        assert a.start == b.start and a.end == b.end
        quantiles = [0.1, 0.5, 0.9]
        np.testing.assert_allclose(
            np.nanquantile(a.scores.astype(float), quantiles),
            np.nanquantile(b.scores.astype(float), quantiles),
            rtol=TOL,
        )
        assert_same(
            np.histogram(a.features["amount"].to_numpy(float), bins=10, range=(0, 500))[0],
            np.histogram(b.features["amount"].to_numpy(float), bins=10, range=(0, 500))[0],
        )


def test_sorted_quantiles_equal_quantile_cont(pair: Pair, results: Results) -> None:
    """Spark's spillable percentiles (and the same SQL elsewhere) equal DuckDB's native ones."""
    native = {
        g: tuple(q) if q is not None else ()
        for g, q in results.connections["duckdb"]
        .execute(
            f"SELECT g, quantile_cont(x, $q) FROM ({EDGE_SQL}) GROUP BY g",
            {"q": list(EDGE_LEVELS)},
        )
        .fetchall()
    }
    assert native["only-null"] == () and native["one"] == (4.5,) * len(EDGE_LEVELS)
    duck, other = pair["edge_quantiles"]
    assert_same(native, duck)
    assert_same(native, other)


def test_a_model_name_with_a_quote_is_a_value(pair: Pair) -> None:
    duck, other = pair["quoted"]
    assert duck == other == (0,)


def test_values_are_bound_never_pasted() -> None:
    quote = "o'brien; DROP TABLE predictions; --"
    for dialect in ("spark", "postgres"):
        sql = "SELECT count(*) FROM served WHERE model = $model"
        st = translate(sql, dialect, {"model": quote})
        assert quote not in st.sql and st.params == {"model": quote}


def test_materialized_cte_hint_is_dropped_for_spark_only() -> None:
    # label_sums_at materialises its exposures for DuckDB; Spark SQL has no such hint.
    sql = "WITH ex AS MATERIALIZED (SELECT 1 AS a) SELECT a FROM ex"
    assert "MATERIALIZED" not in translate(sql, "spark", {}).sql
    assert "MATERIALIZED" in translate(sql, "postgres", {}).sql


def test_postgres_engine_needs_a_postgres_store(store: EventStore) -> None:
    from arbiter.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match=r"events\.url"):
        open_engine("postgres", store)
    with pytest.raises(InvalidInputError, match="engine"):
        open_engine("presto", store)
    with pytest.raises(EngineError, match="PostgreSQL event store"):
        open_engine("postgres", store, events_url="postgresql://nobody@127.0.0.1:1/none")


def test_cli_engine_option(store: EventStore, capsys: pytest.CaptureFixture[str]) -> None:
    from arbiter.cli import main
    from arbiter.cli.status_codes import BAD_INPUT

    home = str(store.home)
    base = ["report", "--home", home, "-m", "fraud", "-e", "ab-1", "--json"]
    with pytest.raises(SystemExit) as exit_info:
        main([*base, "--output", str(store.home / "a.md")])
    assert exit_info.value.code == 0
    default = json.loads(capsys.readouterr().out)
    with pytest.raises(SystemExit) as exit_info:
        main([*base, "--output", str(store.home / "b.md"), "--engine", "duckdb"])
    assert exit_info.value.code == 0
    chosen = json.loads(capsys.readouterr().out)
    # Equal to TOL, not bit for bit: DuckDB's parallel float sums may differ in the last digits
    # from one run to the next.
    assert_same(
        {k: v for k, v in chosen.items() if k != "report_file"},
        {k: v for k, v in default.items() if k != "report_file"},
    )
    for command in (["analyze", "--no-html"], ["report"]):
        args = [*command, "--home", home, "-m", "fraud", "--engine", "postgres"]
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        assert exit_info.value.code == BAD_INPUT
        err = capsys.readouterr().err
        assert "events.url: postgresql://" in err and "Traceback" not in err
