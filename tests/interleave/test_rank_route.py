"""``POST /models/{name}/rank`` and click feedback, through a real gateway on 127.0.0.1."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest

from arbiter.analysis.interleave import analyze_interleave, decode_impression
from arbiter.demo.ranking import example_frame, popularity_ranker, quality_ranker
from arbiter.events import EventStore
from arbiter.home import Home
from arbiter.routing.interleaving import balanced

from .conftest import MODEL, SLOW_S, RankingTemplate, ranker_config

QUERY = {"topic": 2, "segment": 1}
Start = Callable[..., tuple[Any, Home]]

pytestmark = pytest.mark.integration


def rankings(template: RankingTemplate, topic: int = 2) -> tuple[list[str], list[str]]:
    """What ranker A and ranker B answer for a topic, computed without the gateway."""
    frame = example_frame().iloc[[0]].assign(topic=topic)
    a = popularity_ranker(template.catalogue).predict(None, frame)[0]
    b = quality_ranker(template.catalogue).predict(None, frame)[0]
    return a, b


class Coin:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def rank(server: Any, body: dict[str, Any], **kw: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/models/{MODEL}/rank", json=body, timeout=30.0, **kw)


def logged_rows(home: Home, server: Any) -> list[dict[str, Any]]:
    server.stop()  # flushes every buffered event
    with EventStore(home.root).connect() as con:
        cur = con.execute(
            "SELECT request_id, role, arm, alias, version, prediction, error, impression, "
            "unit_id, strategy, protocol FROM predictions ORDER BY request_id, arm"
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def test_team_draft_merges_both_rankers(
    rank_gateway: Start, ranking_template: RankingTemplate
) -> None:
    server, home = rank_gateway(ranker_config("team_draft"))
    a, b = rankings(ranking_template)
    ids = []
    for _ in range(20):
        r = rank(server, {"features": QUERY, "user_id": "u1", "k": 6})
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {
            "request_id", "model", "experiment", "strategy", "method", "items", "teams",
            "versions",
        }  # fmt: skip
        assert body["method"] == "team_draft" and body["strategy"] == "interleave"
        assert body["versions"] == {"champion": "1", "challenger": "2"}
        items, teams = body["items"], body["teams"]
        assert len(items) == 6 == len(set(items)) and set(teams) <= {"champion", "challenger"}
        assert abs(teams.count("champion") - teams.count("challenger")) <= 1
        for team, ranking in (("champion", a), ("challenger", b)):
            mine = [i for i, t in zip(items, teams, strict=True) if t == team]
            assert mine == sorted(mine, key=ranking.index)  # the ranker's own order
            # Team-draft adds the ranker's best item not yet shown.
            assert all(i in ranking for i in mine)
        ids.append(body["request_id"])
    assert len(set(ids)) == 20
    rows = logged_rows(home, server)
    assert len(rows) == 40 and {r["role"] for r in rows} == {"interleaved"}
    first = [r for r in rows if r["request_id"] == ids[0]]
    assert [r["arm"] for r in first] == ["challenger", "champion"]  # sorted by arm
    # One impression per request, on the champion's row; team-draft credit needs no rankings,
    # and each ranker's own complete list is its row's prediction.
    assert first[0]["impression"] is None and first[0]["unit_id"] == "u1"
    il = decode_impression(first[1]["impression"])
    assert il.ranking_a == il.ranking_b == () and len(il.items) == 6
    assert "ranking_a" not in first[1]["impression"]
    assert [json.loads(r["prediction"]) for r in first] == [b, a]
    assert first[0]["protocol"] == "rank" and first[0]["error"] is None


def test_balanced_merge_and_length_from_config(
    rank_gateway: Start, ranking_template: RankingTemplate
) -> None:
    server, _ = rank_gateway(ranker_config("balanced", length=8))
    a, b = rankings(ranking_template)
    expected = {
        lead: list(balanced(a, b, Coin(v), k=8).items)  # type: ignore[arg-type]
        for lead, v in (("a", 0.1), ("b", 0.9))
    }
    leads = set()
    for _ in range(16):
        body = rank(server, {"features": QUERY, "user_id": "u2"}).json()  # k from the config
        assert body["method"] == "balanced" and len(body["items"]) == 8
        match = [lead for lead, items in expected.items() if items == body["items"]]
        assert match, body
        leads.update(match)
    # k in the body caps the configured length
    assert len(rank(server, {"features": QUERY, "k": 3}).json()["items"]) == 3
    assert leads == {"a", "b"}  # a fresh coin per request: both leaders show up


def test_unset_length_merges_everything_and_latency_is_labelled_by_role(
    rank_gateway: Start, ranking_template: RankingTemplate
) -> None:
    server, _ = rank_gateway(ranker_config(length=None))
    a, b = rankings(ranking_template)
    body = rank(server, {"features": QUERY, "user_id": "u9"}).json()
    assert len(body["items"]) == min(len(set(a) | set(b)), 1_000)  # capped at MAX_K
    metrics = httpx.get(f"{server.url}/metrics").text
    latency = [line for line in metrics.splitlines()
               if line.startswith("arbiter_model_latency_seconds_count")]  # fmt: skip
    assert sorted(latency) == [
        f'arbiter_model_latency_seconds_count{{alias="{alias}",model="ranker",'
        f'role="interleaved"}} 1.0'
        for alias in ("challenger", "champion")
    ]


def test_both_rankers_score_concurrently(rank_gateway: Start) -> None:
    """Two rankers of 0.4 s each answer in about 0.4 s, not 0.8 s."""
    config = ranker_config(challenger_alias="slow-b")
    config[MODEL]["champion_alias"] = "slow-a"
    server, _ = rank_gateway(config)
    assert rank(server, {"features": QUERY}).status_code == 200  # warm-up
    start = time.perf_counter()
    body = rank(server, {"features": QUERY, "user_id": "u8"}).json()
    elapsed = time.perf_counter() - start
    assert sorted(body["items"]) == ["a", "b", "c", "d", "e"]
    assert elapsed < 1.75 * SLOW_S, f"{elapsed:.2f} s: the rankers ran one after the other"


@pytest.mark.parametrize(
    ("challenger", "reason"),
    [("raising", "injected failure"), ("garbage", "item ids"), ("missing", None)],
)
def test_failing_or_missing_challenger_serves_the_champion_alone(
    rank_gateway: Start, ranking_template: RankingTemplate, challenger: str, reason: str | None
) -> None:
    server, home = rank_gateway(ranker_config(challenger_alias=challenger))
    a, _ = rankings(ranking_template)
    for _ in range(3):
        r = rank(server, {"features": QUERY, "user_id": "u3", "k": 5})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["items"] == a[:5] and body["teams"] == ["champion"] * 5
        assert body["method"] == "single" and body["versions"] == {"champion": "1"}
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'arbiter_errors_total{kind="ranker_fallback",model="ranker"} 3.0' in metrics
    rows = logged_rows(home, server)
    served = [r for r in rows if r["role"] == "served"]
    assert len(served) == 3 and all(r["arm"] == "champion" for r in served)
    assert all(r["impression"] is None for r in rows)
    failed = [r for r in rows if r["arm"] == "challenger"]
    if reason is None:
        assert failed == []  # nothing ran
    else:
        assert len(failed) == 3 and all(reason in r["error"] for r in failed)
    with EventStore(home.root).connect() as con:
        analysis = analyze_interleave(con, MODEL, f"{MODEL}-interleave-team_draft")
    assert analysis.counts["fallbacks"] == 3 and analysis.counts["impressions"] == 0
    assert analysis.counts["challenger_failures"] == (0 if reason is None else 3)


def test_champion_failure_is_a_500(rank_gateway: Start) -> None:
    config = ranker_config()
    config[MODEL]["champion_alias"] = "raising"
    server, _ = rank_gateway(config)
    r = rank(server, {"features": QUERY})
    assert r.status_code == 500 and r.json()["error"]["code"] == "model_error"


@pytest.mark.parametrize("strategy", ["none", "ab"])
def test_other_strategies_answer_the_routed_arm(
    rank_gateway: Start, ranking_template: RankingTemplate, strategy: str
) -> None:
    server, _ = rank_gateway(ranker_config(strategy=strategy))
    a, b = rankings(ranking_template)
    arms = set()
    for u in range(12):
        body = rank(server, {"features": QUERY, "user_id": f"u{u}", "k": 4}).json()
        arm = body["teams"][0]
        assert body["teams"] == [arm] * 4 and body["method"] == "single"
        assert body["items"] == (a if arm == "champion" else b)[:4]
        assert body["strategy"] == strategy and list(body["versions"]) == [arm]
        arms.add(arm)
    assert arms == ({"champion"} if strategy == "none" else {"champion", "challenger"})


def test_predict_on_an_interleave_model_is_served_by_the_champion(
    rank_gateway: Start, ranking_template: RankingTemplate
) -> None:
    server, _ = rank_gateway(ranker_config())
    a, _ = rankings(ranking_template)
    r = httpx.post(f"{server.url}/models/{MODEL}/predict", json={"features": QUERY})
    body = r.json()
    assert body["arm"] == "champion" and body["strategy"] == "interleave"
    assert body["prediction"] == a
    models = httpx.get(f"{server.url}/models").json()["models"]
    exp = next(m for m in models if m["name"] == MODEL)["experiment"]
    assert exp["strategy"] == "interleave" and exp["split"] == {"champion": 1.0}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": "u"}, "features"),
        ({"features": [QUERY]}, "features"),
        ({"features": {"topic": 2}}, "features.segment"),
        ({"features": {"topic": "two", "segment": 1}}, "features.topic"),
        ({"features": QUERY, "k": 0}, "k"),
        ({"features": QUERY, "k": "5"}, "k"),
        ({"features": QUERY, "k": True}, "k"),
        ({"features": QUERY, "user_id": ["u"]}, "user_id"),
        ({"features": QUERY, "unit": "u"}, "unit"),
        ([QUERY], "body"),
    ],
)
def test_bad_rank_input_is_a_422_naming_the_field(
    rank_gateway: Start, body: Any, field: str
) -> None:
    server, home = rank_gateway(ranker_config())
    r = rank(server, body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field
    assert logged_rows(home, server) == []  # nothing logged for a rejected request


def test_rank_malformed_json_and_unknown_model(rank_gateway: Start) -> None:
    server, _ = rank_gateway(ranker_config())
    r = httpx.post(
        f"{server.url}/models/{MODEL}/rank",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400 and r.json()["error"]["field"] == "body"
    r = httpx.post(f"{server.url}/models/nope/rank", json={"features": QUERY})
    assert r.status_code == 404


# --- clicks feedback --------------------------------------------------------------------------


def stored_labels(home: Home) -> list[tuple[str, str]]:
    with EventStore(home.root).connect() as con:
        return con.execute("SELECT request_id, label FROM feedback ORDER BY ts").fetchall()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"request_id": "r1", "clicks": "item-3"}, "clicks"),
        ({"request_id": "r1", "clicks": ["item-3", 1.5]}, "clicks[1]"),
        ({"request_id": "r1", "clicks": ["item-3", True]}, "clicks[1]"),
        ({"request_id": "r1", "clicks": [""]}, "clicks[0]"),
        ({"request_id": "r1", "clicks": ["a"], "label": 1}, "clicks"),
        ({"request_id": "", "clicks": ["a"]}, "request_id"),
        ({"request_id": "r1", "row_index": 1, "clicks": ["a"]}, "row_index"),
        ({"request_id": "r1", "label": '{"clicks": ["a"]}'}, "label"),
        (
            {"feedback": [{"request_id": "r1", "clicks": []}, {"request_id": "r2", "clicks": 3}]},
            "feedback[1].clicks",
        ),
        ([{"request_id": "r1", "clicks": ["a"]}, {"request_id": "r2", "clicks": [{}]}], "rows[1]"),
    ],
)
def test_bad_clicks_reject_the_whole_request(rank_gateway: Start, body: Any, field: str) -> None:
    server, home = rank_gateway(ranker_config())
    r = httpx.post(f"{server.url}/feedback", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"].startswith(field)
    assert stored_labels(home) == []  # no partial writes


def test_clicks_are_stored_durably_in_every_form(rank_gateway: Start) -> None:
    server, home = rank_gateway(ranker_config())
    rid = rank(server, {"features": QUERY, "user_id": "u9"}).json()["request_id"]
    forms: list[Any] = [
        {"request_id": rid, "clicks": ["item-3", 7]},
        {"feedback": [{"request_id": rid, "clicks": []}, {"request_id": "x", "clicks": ["a"]}]},
        [{"request_id": rid, "row_index": 0, "clicks": ["item-9"]}],
    ]
    stored = [httpx.post(f"{server.url}/feedback", json=f).json()["stored"] for f in forms]
    assert stored == [1, 2, 1]
    labels = stored_labels(home)  # readable before the gateway stops: on disk on return
    assert labels[0] == (rid, '{"clicks":["item-3",7]}')
    assert sorted(lbl for r, lbl in labels if r == rid) == sorted(
        ['{"clicks":["item-3",7]}', '{"clicks":[]}', '{"clicks":["item-9"]}']
    )
    np.testing.assert_equal(len(labels), 4)


def test_forced_arm_ranks_alone_and_is_left_out_of_the_analysis(
    rank_gateway: Start, ranking_template: RankingTemplate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARBITER_API_TOKEN", "s3cret")
    server, home = rank_gateway(ranker_config())
    _, b = rankings(ranking_template)
    headers = {"X-Arbiter-Arm": "challenger", "Authorization": "Bearer s3cret"}
    body = rank(server, {"features": QUERY, "k": 4}, headers=headers).json()
    assert body["items"] == b[:4] and body["teams"] == ["challenger"] * 4
    assert body["versions"] == {"challenger": "2"}
    r = rank(server, {"features": QUERY}, headers={"X-Arbiter-Arm": "challenger"})
    assert r.status_code == 401
    server.stop()
    with EventStore(home.root).connect() as con:
        forced = con.execute("SELECT forced, role, arm FROM predictions").fetchall()
        analysis = analyze_interleave(con, MODEL, f"{MODEL}-interleave-team_draft")
    assert forced == [(True, "served", "challenger")]
    assert analysis.counts["impressions"] == 0 and analysis.counts["fallbacks"] == 0


def test_rank_is_in_the_openapi_schema(rank_gateway: Start) -> None:
    server, _ = rank_gateway(ranker_config())
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    assert "post" in paths[f"/models/{MODEL}/rank"]  # one path per served model
    assert "clicks" in str(paths["/feedback"])
