"""One query, three dialects: arbiter's DuckDB SQL transpiled with SQLGlot, parameters kept bound.

Every query in arbiter is written once, in DuckDB's dialect, with ``$name`` parameters
(:mod:`arbiter.events.query`). :func:`translate` turns one into the statement a Spark or
PostgreSQL engine runs: SQLGlot parses the DuckDB text into a syntax tree and writes it in the
target dialect, and ``$name`` placeholders come out as Spark's ``:name`` or psycopg's
``%(name)s``, so values still reach the engine only as bound parameters, never as SQL text.

SQLGlot translates most of what arbiter writes by itself (``FILTER (WHERE ...)``, ``x ^ 2``,
``count(DISTINCT ...)``, ``list_sort(list(DISTINCT ...))`` to Spark, ``quantile_cont`` to
PostgreSQL's ``percentile_cont ... WITHIN GROUP``). What it leaves as DuckDB functions or
syntax the target lacks is rewritten here on the tree, one small rule each (the rule says
why):

- ``epoch_us(ts)``: Spark ``unix_micros(ts)``; PostgreSQL
  ``CAST(EXTRACT(EPOCH FROM ts) * 1000000 AS BIGINT)``.
- ``quantile_cont(x, $list)``: Spark ``percentile(x, :list)`` (in memory, no spill: the
  analysis computes exact quantiles over many rows on Spark with
  :mod:`arbiter.events.exact_quantiles` instead); PostgreSQL
  ``percentile_cont(CAST(%(list)s AS DOUBLE PRECISION[])) WITHIN GROUP (ORDER BY x)``.
- ``WITH t AS MATERIALIZED (...)``: Spark ``WITH t AS (...)`` (no such hint in Spark SQL).
- ``row_number() OVER ()`` (a unique integer key per row): Spark
  ``monotonically_increasing_id()`` (Spark wants an ORDER BY in a row_number window).
- ``arg_min(x, key)`` / ``arg_max``: PostgreSQL ``(array_agg(x ORDER BY key [DESC]))[1]``.
- ``list_sort(list(x))[k]``: PostgreSQL ``(array_agg(x ORDER BY x))[k]`` (it subscripts only
  a parenthesised call).
- ``any_value(x)``: PostgreSQL ``min(x)`` (PostgreSQL 15 has no ``any_value``).
- ``list_sort(list(DISTINCT x))``: PostgreSQL ``array_agg(DISTINCT x ORDER BY x)``.
- ``GROUP BY ALL`` (Spark >= 3.4 has it): PostgreSQL ``GROUP BY 1, 2, ...``, the positions of
  the non-aggregate columns.
- ``FROM (SELECT ...)`` without a name: PostgreSQL 15 needs one (``AS _subN``).
- ``unnest(json_transform(f, $spec))``: one column per key of ``$spec``, Spark
  ``try_cast(get_json_object(f, :key) AS DOUBLE)``, PostgreSQL ``->>`` (numbers only where
  ``jsonb_typeof`` says number).
- ``CREATE TEMP TABLE t AS q``: :attr:`Statement.kind` ``"create_temp"`` (Spark caches the
  DataFrame of ``q``; PostgreSQL runs ``CREATE TEMP TABLE``, without DuckDB's ``OR REPLACE``).
- ``DROP TABLE IF EXISTS t``: :attr:`Statement.kind` ``"drop"``.
- ``SET threads = 1``: ignored (a DuckDB setting).

The JSON rewrite reads the *value* of ``$spec`` (the column names and types a drift window
wants) to know which keys to extract: the keys become bound parameters of the generated
query (``$__json_key_0`` ...) and the output column names quoted identifiers, so nothing a
client sent is pasted into SQL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import sqlglot
from sqlglot import exp

Dialect = Literal["spark", "postgres"]
StatementKind = Literal["query", "create_temp", "drop", "ignore"]

_PG_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
_JSON_KEY = "__json_key_"


@dataclass(frozen=True, slots=True)
class Statement:
    """One DuckDB statement as a target engine runs it.

    Attributes
    ----------
    kind : {"query", "create_temp", "drop", "ignore"}
        ``query``: run :attr:`sql` with :attr:`params`. ``create_temp``: materialise the query
        :attr:`sql` as the temporary table :attr:`table` (the engine chooses how: Spark caches
        a DataFrame, PostgreSQL runs :attr:`sql` as a ``CREATE TEMP TABLE``). ``drop``: drop
        the temporary table :attr:`table` if it exists. ``ignore``: a DuckDB setting with no
        counterpart (``SET threads``); nothing to run.
    sql : str
        The statement in the target dialect, with the target's placeholders.
    params : dict
        The bound values the statement uses, by name (a subset of those passed).
    table : str, optional
        The temporary table of ``create_temp`` and ``drop``.
    """

    kind: StatementKind
    sql: str = ""
    params: dict[str, Any] | None = None
    table: str | None = None


def translate(duckdb_sql: str, dialect: Dialect, params: Mapping[str, Any] | None) -> Statement:
    """Translate one DuckDB statement with ``$name`` parameters into ``dialect``.

    Parameters
    ----------
    duckdb_sql : str
        One statement as arbiter writes it for DuckDB.
    dialect : {"spark", "postgres"}
        The target engine.
    params : mapping, optional
        The values of the ``$name`` parameters (``None`` is SQL NULL).

    Returns
    -------
    Statement
        What to run, with only the parameters the statement reads.

    Raises
    ------
    ValueError
        A parameter the statement reads has no value.
    """
    values = dict(params or {})
    spec = values.get("spec") if "json_transform" in duckdb_sql.lower() else None
    kind, sql, table, names = _translate_cached(duckdb_sql, dialect, spec)
    if kind == "ignore":
        return Statement("ignore")
    if spec is not None:
        for i, key in enumerate(json.loads(spec)):
            values[f"{_JSON_KEY}{i}"] = key if dialect == "postgres" else f"$.{key}"
    missing = [n for n in names if n not in values]
    if missing:
        raise ValueError(f"no value for parameters {sorted(missing)}")
    return Statement(kind, sql, {n: values[n] for n in names}, table)


@lru_cache(maxsize=512)
def _translate_cached(
    duckdb_sql: str, dialect: Dialect, spec: str | None
) -> tuple[StatementKind, str, str | None, tuple[str, ...]]:
    # The same few dozen query texts run again and again (every experiment, every engine
    # connection): parse and generate each once.
    tree = sqlglot.parse_one(duckdb_sql, read="duckdb")
    if isinstance(tree, exp.Set):
        return "ignore", "", None, ()
    if isinstance(tree, exp.Drop):
        name = tree.this.name if isinstance(tree.this, exp.Table) else tree.find(exp.Table).name
        drop_sql = f"DROP TABLE IF EXISTS {exp.to_identifier(name).sql(dialect)}"
        return "drop", drop_sql, name, ()
    kind: StatementKind = "query"
    table = None
    if isinstance(tree, exp.Create) and tree.args.get("kind") == "TABLE":
        kind, table = "create_temp", tree.this.name
        if dialect == "spark":
            tree = tree.expression  # the engine materialises the query itself
        else:
            tree.set("replace", False)  # PostgreSQL has no CREATE OR REPLACE TABLE
    tree = tree.transform(_RULES[dialect], copy=True)
    if spec is not None:
        tree = _expand_json_transform(tree, dialect, json.loads(spec))
    names = tuple(dict.fromkeys(p.name for p in tree.find_all(exp.Placeholder)))
    sql = tree.sql(dialect=dialect)
    if dialect == "postgres":
        # psycopg reads % as the start of a placeholder: double every other one.
        sql = re.sub(r"%(?!\(\w+\)s)", "%%", sql)
    return kind, sql, table, names


# --- rules ------------------------------------------------------------------------------------


def _function_name(node: exp.Expression) -> str:
    return node.name.lower() if isinstance(node, exp.Anonymous) else ""


def _spark_rule(node: exp.Expression) -> exp.Expression:
    if _function_name(node) == "epoch_us":
        # Spark's name for the same function (microseconds since the epoch, as BIGINT).
        return exp.Anonymous(this="unix_micros", expressions=node.expressions)
    if isinstance(node, exp.CTE) and node.args.get("materialized"):
        # Spark has no AS MATERIALIZED hint (a syntax error); it decides itself whether to
        # reuse a CTE (its ReuseExchange shares the repeated scan). Changed in place (the
        # tree is already a copy): a new node would stop the rules at the CTE's body.
        node.set("materialized", None)
        return node
    if (
        isinstance(node, exp.Window)
        and isinstance(node.this, exp.RowNumber)
        and not node.args.get("partition_by")
        and not node.args.get("order")
    ):
        # row_number() OVER (): DuckDB numbers rows in no particular order (arbiter uses it
        # for an integer key unique per row); Spark requires an ORDER BY, which would sort
        # every row into one partition. monotonically_increasing_id() is unique per row too
        # (64-bit, not consecutive), computed where the row is.
        return exp.Anonymous(this="monotonically_increasing_id", expressions=[])
    if isinstance(node, exp.PercentileCont) and node.expression is not None:
        # DuckDB's quantile_cont(x, [q...]) is Spark's percentile(x, array): exact, with the
        # same linear interpolation between the closest ranks ((n - 1) * q). It holds every
        # distinct value of a group in memory (no spill): arbiter's queries over many rows ask
        # Spark for exact quantiles through arbiter.events.exact_quantiles instead.
        return exp.Anonymous(this="percentile", expressions=[node.this, node.expression])
    return node


def _postgres_rule(node: exp.Expression) -> exp.Expression:
    if _function_name(node) == "epoch_us":
        # EXTRACT(EPOCH ...) is numeric (exact) since PostgreSQL 14: microseconds stay exact.
        (arg,) = node.expressions
        return exp.cast(
            exp.Mul(
                this=exp.Extract(this=exp.var("EPOCH"), expression=arg),
                expression=exp.Literal.number(1_000_000),
            ),
            "BIGINT",
        )
    if isinstance(node, exp.IgnoreNulls) and isinstance(node.this, exp.AnyValue):
        node = node.this
    if isinstance(node, exp.AnyValue):
        # PostgreSQL 15 has no any_value (16 does); min is one of the values too, and arbiter
        # asks any_value only of columns constant within the group (an experiment's strategy).
        return exp.Min(this=node.this)
    if isinstance(node, exp.ArraySort) and isinstance(node.this, exp.ArrayAgg):
        inner = node.this.this
        column = inner.expressions[0] if isinstance(inner, exp.Distinct) else inner
        return sqlglot.parse_one(
            f"array_agg({'DISTINCT ' if isinstance(inner, exp.Distinct) else ''}"
            f"{column.sql('postgres')} ORDER BY {column.sql('postgres')})",
            read="postgres",
        )
    if isinstance(node, exp.ArgMin | exp.ArgMax):
        # PostgreSQL has no arg_min/arg_max: the first of the values ordered by the key.
        order = "" if isinstance(node, exp.ArgMin) else " DESC"
        return sqlglot.parse_one(
            f"(array_agg({node.this.sql('postgres')} "
            f"ORDER BY {node.expression.sql('postgres')}{order}))[1]",
            read="postgres",
        )
    if isinstance(node, exp.Bracket) and isinstance(node.this, exp.AggFunc | exp.ArraySort):
        # array_agg(...)[2]: PostgreSQL subscripts only a parenthesised function call. In
        # place, so that the rules still reach the call inside.
        node.set("this", exp.Paren(this=node.this))
        return node
    if isinstance(node, exp.PercentileCont) and isinstance(node.expression, exp.Placeholder):
        # A Python list binds as numeric[]; percentile_cont takes double precision[].
        node = node.copy()
        node.set("expression", exp.cast(node.expression, "DOUBLE[]"))
        return node
    if isinstance(node, exp.Group) and node.args.get("all"):
        return _group_by_ordinals(node)
    if (
        isinstance(node, exp.Subquery)
        and not node.alias
        and isinstance(node.parent, exp.From | exp.Join)
    ):
        # DuckDB and Spark accept a subquery in FROM without a name; PostgreSQL 15 does not.
        node = node.copy()
        node.set("alias", exp.TableAlias(this=exp.to_identifier(f"_sub{id(node) % 10**8}")))
        return node
    return node


def _group_by_ordinals(group: exp.Group) -> exp.Expression:
    """``GROUP BY ALL`` (DuckDB, Spark) as ``GROUP BY 1, 2, ...``, which PostgreSQL takes."""
    select = group.parent
    assert isinstance(select, exp.Select)
    positions = [
        exp.Literal.number(i)
        for i, projection in enumerate(select.expressions, start=1)
        if not projection.find(exp.AggFunc)
    ]
    return exp.Group(expressions=positions)


_RULES = {"spark": _spark_rule, "postgres": _postgres_rule}


def _expand_json_transform(
    tree: exp.Expression, dialect: Dialect, spec: dict[str, str]
) -> exp.Expression:
    """``unnest(json_transform(col, $spec))``: one column per key of ``spec``.

    DuckDB parses each JSON text once into a struct; the other engines extract key by key
    (Spark's ``get_json_object``, PostgreSQL's ``->>``). A value that is not of the wanted type
    becomes NULL, as in DuckDB.
    """
    for node in list(tree.find_all(exp.Explode)):
        call = node.this
        if _function_name(call) != "json_transform":
            continue
        source = call.expressions[0].sql(dialect)
        columns = []
        for i, (name, kind) in enumerate(spec.items()):
            key = f"{':' if dialect == 'spark' else '%('}{_JSON_KEY}{i}"
            key += "" if dialect == "spark" else ")s"
            column = exp.to_identifier(name, quoted=True).sql(dialect)
            numeric = kind.upper() in ("DOUBLE", "FLOAT", "BIGINT", "INTEGER")
            if dialect == "spark":
                value = f"get_json_object({source}, {key})"
                text = f"try_cast({value} AS DOUBLE)" if numeric else value
            else:
                doc = f"CAST({source} AS JSONB)"
                text = (
                    f"CASE WHEN jsonb_typeof({doc} -> {key}) = 'number' "
                    f"THEN CAST({doc} ->> {key} AS DOUBLE PRECISION) END"
                    if numeric
                    else f"{doc} ->> {key}"
                )
            columns.append(f"{text} AS {column}")
        replacement = ", ".join(columns) or "1 AS __none"
        select = node.parent_select
        assert select is not None
        index = select.expressions.index(node)
        parsed = sqlglot.parse_one(f"SELECT {replacement}", read=dialect).expressions
        rest = select.expressions[index + 1 :]
        select.set("expressions", select.expressions[:index] + parsed + rest)
    return tree


def placeholders(sql: str) -> list[str]:
    """The psycopg ``%(name)s`` placeholders of a translated PostgreSQL statement."""
    return _PG_PLACEHOLDER.findall(sql)


__all__ = ["Dialect", "Statement", "StatementKind", "placeholders", "translate"]
