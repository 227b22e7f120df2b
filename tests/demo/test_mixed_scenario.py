"""The mixed scenario's parts: the champion pipeline on raw columns, served by a real gateway."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from arbiter.column_kinds import column_kinds
from arbiter.demo.mixed_data import make_accounts
from arbiter.demo.mixed_scenario import json_rows, signature_example, train_mixed_champion


@pytest.fixture(scope="module")
def trained():
    data = make_accounts(4_000, seed=5)
    return data, train_mixed_champion(data.model_inputs(), data.labels, seed=5)


def test_champion_reads_none_and_nan_alike_even_in_a_one_row_batch(trained) -> None:
    data, model = trained
    row = data.model_inputs().head(1)
    gaps = {"merchant_category", "device", "customer_note", "declared_income"}
    with_nan = row.assign(**dict.fromkeys(gaps, np.nan))
    # What the gateway builds from one JSON row with nulls: object columns holding None.
    with_none = row.astype(object).assign(**dict.fromkeys(gaps, None))
    with_none["declared_income"] = np.nan
    a, b = model.predict_proba(with_nan)[:, 1], model.predict_proba(with_none)[:, 1]
    np.testing.assert_allclose(a, b, rtol=1e-12)
    assert a[0] != pytest.approx(model.predict_proba(row)[0, 1])  # the gaps were read as gaps


def test_champion_separates_frauds_and_uses_the_strings(trained) -> None:
    from sklearn.metrics import roc_auc_score

    _, model = trained
    fresh = make_accounts(4_000, seed=6)
    x = fresh.model_inputs()
    auc = roc_auc_score(fresh.labels, model.predict_proba(x)[:, 1])
    assert auc > 0.75
    blank = x.assign(merchant_category=None, country=None, device=None, customer_note=None)
    assert roc_auc_score(fresh.labels, model.predict_proba(blank)[:, 1]) < auc - 0.03


def test_signature_example_has_a_gap_in_every_gappy_column() -> None:
    x = make_accounts(2_000, seed=3).model_inputs()
    example = signature_example(x, rows=3)
    gappy = set(x.columns[x.isna().any().to_numpy()])
    assert gappy and set(example.columns[example.isna().any().to_numpy()]) == gappy
    assert len(example) <= 3 + len(gappy)
    assert column_kinds(example) == column_kinds(x)


def test_json_rows_send_nulls_not_nans() -> None:
    rows = json_rows(make_accounts(300, seed=4))
    records = rows.features.to_dict("records")
    assert "event_time" not in records[0]
    values = [v for r in records for v in r.values()]
    assert any(v is None for v in values)
    assert not any(isinstance(v, float) and np.isnan(v) for v in values)


@pytest.mark.integration
def test_gateway_serves_raw_rows_and_names_the_bad_field(trained, tmp_path: Path) -> None:
    from arbiter.config import HomeConfig, dump_config
    from arbiter.gateway.app import create_app
    from arbiter.gateway.server import ServerThread
    from arbiter.home import Home
    from arbiter.registry import registry_for_home

    data, model = trained
    home = Home.at(tmp_path / "home", create=True)
    registry = registry_for_home(home.root)
    x = data.model_inputs()
    registry.log_sklearn_model("accounts", model, signature_example(x), aliases=("champion",))
    config = HomeConfig.model_validate({"models": {"accounts": {}}})
    home.config_path.write_text(dump_config(config), encoding="utf-8")
    rows = json_rows(make_accounts(40, seed=8)).features.to_dict("records")
    assert any(None in r.values() for r in rows)
    with ServerThread(create_app(home)) as server:
        url = f"{server.url}/models/accounts/predict"
        answers = [httpx.post(url, json={"features": r}, timeout=60) for r in rows[:10]]
        assert [a.status_code for a in answers] == [200] * 10, answers[0].text
        batch = httpx.post(url, json={"features": rows}, timeout=60)
        assert batch.status_code == 200
        expected = model.predict_proba(pd.DataFrame(rows))[:, 1]
        scores = [p["1"] for p in batch.json()["probabilities"]]
        np.testing.assert_allclose(scores, expected, rtol=1e-9)
        for field, value in (("merchant_category", 5), ("amount", None), ("amount", "big")):
            bad = httpx.post(url, json={"features": {**rows[0], field: value}}, timeout=60)
            assert 400 <= bad.status_code < 500, (field, value, bad.text)
            assert field in bad.text


def test_gateway_frame_reads_a_null_string_as_missing_in_a_one_row_batch() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from arbiter.features import rows_to_frame
    from arbiter.retrain.encoding import layout_for, preprocessor

    data = make_accounts(3_000, seed=5)
    x = data.model_inputs()
    model = Pipeline(
        [
            ("prepare", preprocessor(layout_for(x), "linear", seed=5)),
            ("model", LogisticRegression(max_iter=2_000, class_weight="balanced")),
        ]
    ).fit(x, data.labels)
    row = json_rows(make_accounts(1, seed=9)).features.to_dict("records")[0]
    row.update(merchant_category=None, device=None)
    alone = rows_to_frame([row], list(x.columns))
    with_others = rows_to_frame([row, {**row, "merchant_category": "grocery"}], list(x.columns))
    assert alone["merchant_category"].isna().all()
    np.testing.assert_allclose(
        model.predict_proba(alone)[0], model.predict_proba(with_others)[0], rtol=1e-12
    )
