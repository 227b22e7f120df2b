"""Drift on mixed tables: categorical columns with unseen categories, missing-value rates,
text columns (vocabulary, length, out-of-vocabulary rate), against raw frames and profiles."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from arbiter.column_kinds import infer_column_kind
from arbiter.drift import DriftConfig, ReferenceProfile, build_profile, check_drift
from arbiter.drift._frame import infer_kind
from arbiter.drift.methods import kish_n, rate_test

CITIES = np.array(["paris", "lyon", "nice", "lille", "nantes", "brest", "metz"])
CITY_P = np.array([0.35, 0.2, 0.15, 0.12, 0.1, 0.06, 0.02])
WORDS = np.array(
    [
        "card",
        "payment",
        "declined",
        "refund",
        "merchant",
        "online",
        "store",
        "delivery",
        "late",
        "wrong",
        "item",
        "customer",
        "service",
        "account",
        "blocked",
        "charge",
        "twice",
        "cancel",
        "order",
        "email",
        "phone",
    ]
)
SHIFT_WORDS = np.array(["crypto", "wallet", "transfer", "bitcoin", "exchange", "token", "mining"])


def _text(rng: np.random.Generator, n: int, words: np.ndarray = WORDS) -> list[str]:
    lengths = rng.integers(3, 12, n)
    return [" ".join(rng.choice(words, k)) for k in lengths]


def _frame(rng: np.random.Generator, n: int, *, missing: float = 0.05) -> pd.DataFrame:
    amount = rng.lognormal(3.0, 1.0, n)
    amount[rng.random(n) < missing] = np.nan
    city = rng.choice(CITIES, n, p=CITY_P).astype(object)
    city[rng.random(n) < missing] = None
    note = np.array(_text(rng, n), dtype=object)
    note[rng.random(n) < missing] = None
    return pd.DataFrame({"amount": amount, "city": city, "note": note})


def _flagged(result) -> set[str]:  # type: ignore[no-untyped-def]
    return {r.column for r in result.features if r.drifted}


def test_kinds_follow_column_kinds() -> None:
    rng = np.random.default_rng(0)
    frame = _frame(rng, 500)
    frame["flag"] = rng.random(500) < 0.5
    frame["code"] = rng.integers(0, 9, 500)
    frame["device"] = pd.array(rng.choice(["ios", "android"], 500), dtype="string")
    for column in frame.columns:
        assert infer_kind(frame[column]) == infer_column_kind(frame[column]), column
    assert infer_kind(frame["note"]) == "text" and infer_kind(frame["city"]) == "categorical"


def test_rate_test_matches_statsmodels() -> None:
    from statsmodels.stats.proportion import proportions_ztest

    for x1, m, x2, n in [(30, 1000, 55, 1200), (0, 500, 7, 400), (200, 400, 190, 410)]:
        out = rate_test(x1 / m, m, x2 / n, n, alpha=0.01)
        _, p = proportions_ztest([x1, x2], [m, n])
        assert out.p_value == pytest.approx(float(p), rel=1e-9)
        h = abs(2 * math.asin(math.sqrt(x2 / n)) - 2 * math.asin(math.sqrt(x1 / m)))
        assert out.statistic == pytest.approx(h, rel=1e-12)
    assert rate_test(0.0, 10, 0.0, 10, alpha=0.01).p_value == 1.0
    # Kish's effective size: equal lengths give n, unequal ones fewer.
    assert kish_n(100, 5.0, 0.0) == 100.0
    assert kish_n(100, 5.0, 5.0) == 50.0


def test_a_new_category_in_5_percent_of_rows_is_flagged_and_named() -> None:
    rng = np.random.default_rng(1)
    ref = _frame(rng, 20_000)
    cur = _frame(rng, 5_000)
    new = rng.random(len(cur)) < 0.05
    city = cur["city"].to_numpy(copy=True)
    city[new] = "marseille"
    cur["city"] = city
    for reference in (ref, build_profile(ref)):
        result = check_drift(reference, cur)
        city_result = result.feature("city")
        assert city_result.drifted, city_result
        assert city_result.method == "js"
        assert [name for name, _ in city_result.unseen] == ["marseille"]
        share = new.sum() / city_result.n_current
        assert city_result.unseen[0][1] == pytest.approx(share)
        assert city_result.unseen_share == pytest.approx(share)
        assert "amount" not in _flagged(result) and "note" not in _flagged(result)
    # Small samples: chi-square, and still flagged.
    small = check_drift(ref.iloc[:800], cur.iloc[:800]).feature("city")
    assert small.method == "chi2" and small.drifted and small.unseen[0][0] == "marseille"
    out = small.to_dict()
    assert out["unseen_categories"][0]["category"] == "marseille"


def _false_alarms(draws: int, n: int, seed: int) -> int:
    """Draws (of ``draws``) in which any column or signal drifted, on exchangeable halves."""
    rng = np.random.default_rng(seed)
    population = _frame(rng, 2 * n)
    alarms = 0
    for _ in range(draws):
        order = rng.permutation(2 * n)
        ref = population.iloc[order[:n]].reset_index(drop=True)
        cur = population.iloc[order[n:]].reset_index(drop=True)
        result = check_drift(ref, cur, DriftConfig(alpha=0.01, histograms=False))
        alarms += bool(_flagged(result))
    return alarms


def _binomial_upper(alarms: int, draws: int, alpha: float) -> None:
    # Reject "false-positive rate <= alpha" only on strong evidence (one-sided, 0.001).
    p = stats.binom.sf(alarms - 1, draws, alpha)
    assert p > 1e-3, f"{alarms} false alarms in {draws} draws at alpha={alpha} (p={p:.2g})"


def test_reshuffled_reference_rows_are_not_flagged() -> None:
    # Small halves: the exact tests (KS, chi-square) and the rate tests decide, not the floors.
    draws = 200
    _binomial_upper(_false_alarms(draws, 300, seed=2), draws, 0.01)


@pytest.mark.slow
def test_reshuffled_reference_rows_are_not_flagged_full() -> None:
    draws = 1000
    _binomial_upper(_false_alarms(draws, 300, seed=3), draws, 0.01)
    _binomial_upper(_false_alarms(200, 5000, seed=4), 200, 0.01)


def test_missing_rate_jump_is_flagged_and_a_stable_rate_is_not() -> None:
    rng = np.random.default_rng(5)
    ref = _frame(rng, 10_000, missing=0.02)
    same = _frame(rng, 5_000, missing=0.02)
    jump = _frame(rng, 5_000, missing=0.02)
    jump.loc[rng.random(len(jump)) < 0.10, "amount"] = np.nan
    stable = check_drift(ref, same)
    for r in stable.features:
        signal = r.signal("missing_rate")
        assert signal is not None and not signal.drifted, r
    assert not _flagged(stable)
    result = check_drift(ref, jump)
    amount = result.feature("amount")
    signal = amount.signal("missing_rate")
    assert signal is not None and signal.drifted and amount.drifted
    assert signal.reference == pytest.approx(0.02, abs=0.005)
    assert signal.current == pytest.approx(0.12, abs=0.015)
    assert signal.p_value_adjusted is not None and signal.p_value_adjusted <= 0.01
    assert _flagged(result) == {"amount"}
    assert amount.to_dict()["signals"]["missing_rate"]["drifted"] is True
    # A column with no missing value on either side has no missing-rate signal.
    clean = check_drift({"x": np.arange(50.0)}, {"x": np.arange(50.0)})
    assert clean.features[0].signals == ()


def test_text_vocabulary_shift_is_flagged_and_a_resample_is_not() -> None:
    rng = np.random.default_rng(6)
    ref = _frame(rng, 10_000)
    same = _frame(rng, 3_000)
    shifted = _frame(rng, 3_000)
    mixed = [
        " ".join([*a.split()[:3], *b.split()])
        for a, b in zip(_text(rng, 3_000, SHIFT_WORDS), _text(rng, 3_000), strict=True)
    ]
    keep = shifted["note"].notna().to_numpy()
    shifted["note"] = np.where(keep, np.array(mixed, dtype=object), None)
    stable = check_drift(ref, same).feature("note")
    assert stable.kind == "text" and stable.method == "js" and not stable.drifted
    assert {s.name for s in stable.signals} == {"missing_rate", "length", "oov_rate"}
    result = check_drift(ref, shifted)
    note = result.feature("note")
    assert note.drifted and note.statistic >= note.threshold
    oov = note.signal("oov_rate")
    length = note.signal("length")
    assert oov is not None and oov.drifted and oov.current > 0.2 and oov.reference == 0.0
    assert length is not None and length.drifted and length.current > length.reference
    # The missing rate did not change: the column drifted through its text signals only.
    missing = note.signal("missing_rate")
    assert missing is not None and not missing.drifted
    assert _flagged(result) == {"note"}


def test_a_text_override_and_errors() -> None:
    rng = np.random.default_rng(7)
    ref = pd.DataFrame({"tag": rng.choice(["alpha beta", "gamma"], 500)})
    assert check_drift(ref, ref).feature("tag").kind == "categorical"
    as_text = check_drift(ref, ref, DriftConfig(kinds={"tag": "text"})).feature("tag")
    assert as_text.kind == "text" and not as_text.drifted
    from arbiter.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="text column"):
        check_drift(ref, ref, DriftConfig(kinds={"tag": "text"}, methods={"tag": "psi"}))
    with pytest.raises(InvalidInputError, match="numeric, categorical or text") as info:
        check_drift(ref, ref, DriftConfig(kinds={"tag": "prose"}))  # type: ignore[dict-item]
    assert info.value.field == "kinds.tag"


def _numbers(result) -> list[float | bool | str | None]:  # type: ignore[no-untyped-def]
    out: list[float | bool | str | None] = []
    for r in result.features:
        out += [r.column, r.method, r.statistic, r.p_value, r.p_value_adjusted, r.threshold]
        out += [r.drifted, r.n_reference, r.n_current, r.unseen_share]
        out += [x for name, share in r.unseen for x in (name, share)]
        for s in r.signals:
            out += [s.name, s.statistic, s.p_value, s.p_value_adjusted, s.threshold, s.drifted]
            out += [s.reference, s.current]
    return out


def _same(a: list, b: list) -> None:  # type: ignore[type-arg]
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        if isinstance(x, float) and isinstance(y, float):
            assert x == pytest.approx(y, rel=1e-9, abs=1e-12) or (math.isnan(x) and math.isnan(y))
        else:
            assert x == y


@pytest.mark.parametrize("n_current", [600, 4_000])
def test_profile_round_trip_gives_the_raw_frame_results(n_current: int) -> None:
    rng = np.random.default_rng(8)
    ref = _frame(rng, 20_000)
    cur = _frame(rng, n_current, missing=0.08)
    cur.loc[rng.random(n_current) < 0.03, "city"] = "toulouse"
    # Numeric columns are compared by PSI (exact bin counts in both), as at large samples.
    config = DriftConfig(methods={"amount": "psi"})
    raw = check_drift(ref, cur, config)
    stored = ReferenceProfile.from_json(build_profile(ref).to_json())
    assert stored.column("note").kind == "text" and stored.column("note").length is not None
    assert stored.column("amount").n_missing == int(ref["amount"].isna().sum())
    again = check_drift(stored, cur, config)
    _same(_numbers(raw), _numbers(again))
    assert raw.drifted == again.drifted and raw.n_drifted == again.n_drifted


def test_version_1_profiles_still_load() -> None:
    profile = build_profile({"x": np.arange(100.0), "c": ["a", "b"] * 50})
    text = profile.to_json().replace('"version":2', '"version":1')
    assert ReferenceProfile.from_json(text) == profile


@pytest.mark.parametrize("shift", [None, 1.0])
def test_the_mixed_demo_table(shift: float | None) -> None:
    """The demo's account table: a drifted month is flagged through the right signals."""
    from arbiter.demo.mixed_data import TIME_COLUMN, make_accounts

    ref = make_accounts(20_000, seed=1).features.drop(columns=[TIME_COLUMN])
    cur = make_accounts(5_000, seed=2, shift=shift).features.drop(columns=[TIME_COLUMN])
    result = check_drift(ReferenceProfile.from_json(build_profile(ref).to_json()), cur)
    assert result.feature("customer_note").kind == "text"
    if shift is None:
        assert not _flagged(result)
        return
    assert {"merchant_category", "declared_income", "customer_note", "amount"} <= _flagged(result)
    merchant = result.feature("merchant_category")
    assert merchant.unseen[0][0] == "crypto_exchange" and merchant.unseen_share > 0.05
    income = result.feature("declared_income").signal("missing_rate")
    assert income is not None and income.drifted and income.current > income.reference
    oov = result.feature("customer_note").signal("oov_rate")
    assert oov is not None and oov.drifted
    # The drifted month opens a new market (mixed-demo b423560+): country drifts, device not.
    country = result.feature("country")
    assert "country" in _flagged(result) and country.unseen[0][0] == "MX"
    assert "device" not in _flagged(result)
