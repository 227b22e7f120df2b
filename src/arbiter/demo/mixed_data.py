"""A synthetic account-fraud table with mixed column types: a fixed seed, a known truth.

The demo's first data set (:mod:`arbiter.demo.data`) is eight clean numeric columns. Real
fraud and churn tables are not: this one has numbers, categorical strings (merchant category,
country, device), gaps (a few per cent in some columns, and one column missing *not* at
random: low declared incomes go unreported more often), a free-text customer note, a
timestamp and a rare label (~5 % positives). The label depends on every kind of column, so a
model that drops the strings, the text or the gaps loses signal.

Accounts belong to users with stable habits (home country, usual device, typical amount), so
A/B assignment by user is realistic.

``shift`` (0 < shift <= 1, or more) draws a drifted month instead: a merchant category that
the reference never saw (``crypto_exchange``, fraud-prone) and a new market (``MX``), a jump
in the income missing rate, new words in the notes (a scam vocabulary the reference notes
never used), larger amounts, a wave of new accounts and a later time window. The new
category and the new words carry fraud signal that a model trained on the reference cannot
use, so a model retrained on drifted data is genuinely better there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: The time column (drop it from model inputs, or use it for time-ordered validation).
TIME_COLUMN = "event_time"
#: The free-text column.
TEXT_COLUMN = "customer_note"
NUMERIC_COLUMNS = (
    "amount",
    "account_age_days",
    "logins_30d",
    "avg_session_min",
    "declared_income",
)
CATEGORICAL_COLUMNS = ("merchant_category", "country", "device")
FEATURES = (*NUMERIC_COLUMNS, *CATEGORICAL_COLUMNS, TEXT_COLUMN, TIME_COLUMN)

MERCHANTS = (
    "grocery",
    "fuel",
    "restaurants",
    "fashion",
    "electronics",
    "travel",
    "gaming",
    "digital_goods",
)
_MERCHANT_P = np.array([0.24, 0.12, 0.17, 0.14, 0.10, 0.08, 0.08, 0.07])
_MERCHANT_RISK = np.array([-0.6, -0.4, -0.3, 0.0, 0.6, 0.4, 0.8, 1.1])
#: The category that appears only in drifted data.
NEW_MERCHANT = "crypto_exchange"
_NEW_MERCHANT_RISK = 2.2

COUNTRIES = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "PL", "BR", "NG", "MX")
_COUNTRY_P = np.array([0.30, 0.14, 0.12, 0.10, 0.08, 0.07, 0.06, 0.05, 0.05, 0.03, 0.0])
_COUNTRY_RISK = np.array([0.0, 0.0, -0.2, 0.0, 0.1, 0.1, -0.2, 0.3, 0.7, 1.0, 0.8])
#: The market that opens in drifted data (no reference row comes from it).
NEW_COUNTRY = "MX"

DEVICES = ("ios", "android", "desktop", "tablet", "emulator")
_DEVICE_P = np.array([0.36, 0.34, 0.22, 0.07, 0.01])
_DEVICE_RISK = np.array([-0.2, 0.1, 0.0, -0.1, 2.4])

#: Words of ordinary notes, and of scam-like notes in the reference and in drifted data.
_NEUTRAL_WORDS = [
    "thanks",
    "order",
    "delivery",
    "parcel",
    "arrived",
    "late",
    "address",
    "changed",
    "please",
    "update",
    "invoice",
    "subscription",
    "monthly",
    "plan",
    "upgrade",
    "question",
    "about",
    "card",
    "statement",
    "payment",
    "received",
    "store",
    "pickup",
    "receipt",
    "lost",
    "return",
    "item",
    "size",
    "wrong",
    "colour",
    "gift",
    "for",
    "family",
]
_RISKY_WORDS = [
    "urgent",
    "refund",
    "transfer",
    "wire",
    "now",
    "account",
    "locked",
    "verify",
    "immediately",
]
_DRIFT_WORDS = ["crypto", "wallet", "voucher", "promo", "bonus", "airdrop", "seed", "phrase"]

_START = np.datetime64("2026-01-01T00:00:00", "s")
_MONTH_S = 30 * 24 * 3600


@dataclass(frozen=True)
class AccountData:
    """Features (mixed kinds, with gaps), 0/1 labels and the user of each row."""

    features: pd.DataFrame
    labels: np.ndarray
    users: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def model_inputs(self) -> pd.DataFrame:
        """The columns a model takes: every feature but the timestamp."""
        return self.features.drop(columns=[TIME_COLUMN])


def _notes(rng: np.random.Generator, n: int, scam: np.ndarray, drift: float) -> np.ndarray:
    """Short notes of 3-9 words; scam rows draw risky (and, when drifted, new) words."""
    lengths = rng.integers(3, 10, n)
    neutral = rng.integers(0, len(_NEUTRAL_WORDS), (n, 9))
    risky = rng.integers(0, len(_RISKY_WORDS), (n, 9))
    drifted = rng.integers(0, len(_DRIFT_WORDS), (n, 9))
    p_risky = np.where(scam, 0.45, 0.03)[:, None]
    use_risky = rng.random((n, 9)) < p_risky
    # In drifted data scammers switch to a new vocabulary; a few ordinary notes use it too.
    p_new = np.where(scam, 0.55 * min(drift, 1.0), 0.04 * min(drift, 1.0))[:, None]
    use_new = rng.random((n, 9)) < p_new
    words_neutral = np.asarray(_NEUTRAL_WORDS, dtype=object)[neutral]
    words_risky = np.asarray(_RISKY_WORDS, dtype=object)[risky]
    words_new = np.asarray(_DRIFT_WORDS, dtype=object)[drifted]
    words = np.where(use_new, words_new, np.where(use_risky, words_risky, words_neutral))
    return np.array(
        [" ".join(row[:k]) for row, k in zip(words, lengths, strict=True)], dtype=object
    )


def make_accounts(
    n: int, *, seed: int = 11, n_users: int = 2_000, shift: float | None = None
) -> AccountData:
    """Generate ``n`` account events from ``n_users`` users, deterministic for ``seed``.

    Parameters
    ----------
    n : int
        Rows to draw (>= 1).
    seed : int
        Seed of the numpy Generator; the same seed gives the same table.
    n_users : int
        Distinct users; each has a home country, a usual device and a typical amount.
    shift : float, optional
        Drift strength (``None`` or 0: the reference distribution). At 1 a new merchant
        category takes ~9 % of rows and a new country ~10 %, the income missing rate rises by
        ~20 points, scam notes switch to a new vocabulary, amounts grow ~50 %, a quarter of
        the accounts are new (under 30 days) and the timestamps move a month on.

    Returns
    -------
    AccountData
        ``features`` columns: :data:`FEATURES` (numeric float64 with NaN gaps; categorical and
        text as pandas strings with missing values; ``event_time`` datetime64), ``labels``
        int64 0/1, ``users`` strings ``user-00042``.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    drift = float(shift or 0.0)
    if drift < 0:
        raise ValueError(f"shift must be >= 0, got {shift}")
    rng = np.random.default_rng(seed)
    user_amount = rng.lognormal(3.7, 0.6, n_users)
    user_country = rng.choice(len(COUNTRIES), n_users, p=_COUNTRY_P)
    user_device = rng.choice(len(DEVICES), n_users, p=_DEVICE_P)
    user_age = rng.gamma(1.3, 400.0, n_users)
    user_income = rng.lognormal(10.6, 0.5, n_users)
    users = rng.integers(0, n_users, n)

    # A hidden scam intent drives the notes, the device and part of the label.
    scam = rng.random(n) < 0.05
    merchant = rng.choice(len(MERCHANTS), n, p=_MERCHANT_P)
    merchant_risk = _MERCHANT_RISK[merchant]
    merchant_names = np.asarray(MERCHANTS, dtype=object)[merchant]
    if drift > 0:
        new = rng.random(n) < 0.08 * min(drift, 1.0) * np.where(scam, 3.0, 1.0)
        merchant_names = np.where(new, NEW_MERCHANT, merchant_names)
        merchant_risk = np.where(new, _NEW_MERCHANT_RISK, merchant_risk)
    travelling = rng.random(n) < 0.06
    country = np.where(travelling, rng.choice(len(COUNTRIES), n, p=_COUNTRY_P), user_country[users])
    device = np.where(
        rng.random(n) < 0.1, rng.choice(len(DEVICES), n, p=_DEVICE_P), user_device[users]
    )
    device = np.where(scam & (rng.random(n) < 0.15), DEVICES.index("emulator"), device)

    amount = np.round(user_amount[users] * rng.lognormal(0.0, 0.7, n) * np.exp(0.4 * drift), 2)
    account_age = np.round(user_age[users] + rng.integers(0, 30, n), 0)
    if drift > 0:
        # A new market opens and a signup campaign brings a wave of young accounts.
        country = np.where(rng.random(n) < 0.1 * min(drift, 1.0), COUNTRIES.index("MX"), country)
        wave = rng.random(n) < 0.25 * min(drift, 1.0)
        account_age = np.where(wave, rng.integers(0, 30, n), account_age).astype(np.float64)
    logins = rng.poisson(np.where(scam, 3.0, 12.0), n).astype(np.float64)
    session = np.round(rng.gamma(2.0, 4.0, n), 1)
    income = np.round(user_income[users] * rng.lognormal(0.0, 0.1, n), -2)
    notes = _notes(rng, n, scam, drift)
    n_risky = np.array([sum(w in _RISKY_WORDS for w in s.split()) for s in notes])
    n_new = np.array([sum(w in _DRIFT_WORDS for w in s.split()) for s in notes])

    low_income = income < np.quantile(user_income, 0.25)
    big = np.log(amount) - np.log(user_amount[users])
    logit = (
        -4.3
        + merchant_risk
        + _COUNTRY_RISK[country] * (1.0 + travelling)
        + _DEVICE_RISK[device]
        + 0.9 * np.clip(big, -1.5, 3.0)
        + 1.3 * (account_age < 60)
        - 0.06 * np.minimum(logins, 20)
        + 1.2 * low_income
        + 0.9 * n_risky
        + 1.0 * n_new
        + 1.6 * scam
    )
    labels = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)

    # Gaps. Income is missing not at random: low incomes (fraud-prone) go unreported more often.
    income_missing = rng.random(n) < np.where(low_income, 0.2, 0.02) + 0.2 * min(drift, 1.0)
    income = np.where(income_missing, np.nan, income)
    session = np.where(rng.random(n) < 0.03, np.nan, session)
    merchant_names = np.where(rng.random(n) < 0.015, None, merchant_names)
    device_names = np.asarray(DEVICES, dtype=object)[device]
    device_names = np.where(rng.random(n) < 0.02, None, device_names)
    notes = np.where(rng.random(n) < 0.04, None, notes)

    seconds = np.sort(rng.integers(0, _MONTH_S, n)) + round(drift * _MONTH_S)
    times = (_START + seconds.astype("timedelta64[s]")).astype("datetime64[us]")
    frame = pd.DataFrame(
        {
            "amount": amount.astype(np.float64),
            "account_age_days": account_age.astype(np.float64),
            "logins_30d": logins,
            "avg_session_min": session.astype(np.float64),
            "declared_income": income.astype(np.float64),
            "merchant_category": pd.array(merchant_names, dtype="str"),
            "country": pd.array(np.asarray(COUNTRIES, dtype=object)[country], dtype="str"),
            "device": pd.array(device_names, dtype="str"),
            TEXT_COLUMN: pd.array(notes, dtype="str"),
            TIME_COLUMN: times,
        },
        columns=list(FEATURES),
    )
    return AccountData(frame, labels, np.array([f"user-{u:05d}" for u in users]))


__all__ = [
    "CATEGORICAL_COLUMNS",
    "FEATURES",
    "NEW_COUNTRY",
    "NEW_MERCHANT",
    "NUMERIC_COLUMNS",
    "TEXT_COLUMN",
    "TIME_COLUMN",
    "AccountData",
    "make_accounts",
]
