"""Interleaving of two rankings, and credit assignment from clicks.

Instead of showing half the users ranker A and half ranker B, interleaving shows every user
one list merged from both and credits each click to a ranker. Preferences are read within one
impression, so interleaving needs one to two orders of magnitude fewer users than an A/B test
on the same rankers (Chapelle, Joachims, Radlinski & Yue 2012, "Large-scale validation and
analysis of interleaved search evaluation", *ACM TOIS* 30(1)).

Two methods:

* **Team-draft** (Radlinski, Kurup & Joachims 2008, "How does clickthrough data reflect
  retrieval quality?", CIKM, Algorithm 1). Like captains picking teams: the team with fewer
  picks goes next (a coin flip when tied) and adds its highest-ranked item not yet shown.
  Each position belongs to the team that picked it; a click counts for that team.
* **Balanced** (Joachims 2002, "Optimizing search engines using clickthrough data", KDD;
  pseudo-code in Chapelle et al. 2012, §3.1). One coin flip decides which ranker leads; the
  merged list then takes items alternately so that for every prefix the top-``k_a`` of A and
  top-``k_b`` of B are shown with ``|k_a − k_b| ≤ 1``. Credit ignores who added an item and
  compares clicks within equal rank cut-offs (:func:`credit`). Known bias: when one ranking
  is a shifted copy of the other, random clicks favour one ranker (A = (d1, d2, d3),
  B = (d2, d3, d4): B wins 3 of 4 single clicks on a uniformly random position; Radlinski,
  Kurup & Joachims 2008, §4). Prefer team-draft.

Both follow the papers while both rankings still have items not yet shown. The papers stop
there; here the merged list is filled up to ``k`` from the ranking that still has items, so a
short or heavily overlapping ranking does not shorten the page. Those tail items belong to the
remaining ranker's team, and team sizes can then differ by more than one.

Per-impression outcomes go to :mod:`arbiter.stats.interleaving`: :func:`count_outcomes` gives
the ``(wins_a, wins_b, ties)`` of :func:`~arbiter.stats.interleaving.interleaving_test`, and
:func:`outcomes_by_user` the per-user arrays of
:func:`~arbiter.stats.interleaving.clustered_interleaving_test` (use this one whenever a user
has more than one impression).

Everything here is pure: randomness comes from a caller's ``numpy.random.Generator``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from arbiter.errors import InvalidInputError

TEAM_A = "A"
TEAM_B = "B"
TEAM_DRAFT = "team_draft"
BALANCED = "balanced"

Method = Literal["team_draft", "balanced"]


@dataclass(frozen=True, slots=True)
class Interleaving:
    """One merged list, shown to one user for one query.

    Attributes
    ----------
    items : tuple
        The merged list, best position first, without duplicates.
    teams : tuple of {"A", "B"}
        Per position, the ranker that contributed the item. For team-draft this is the team
        that picked it and decides the credit; for balanced it is the ranker whose turn added
        the item (informational: balanced credit uses rank cut-offs instead).
    method : {"team_draft", "balanced"}
    ranking_a, ranking_b : tuple
        The input rankings, kept because balanced credit needs them.
    a_first : bool
        Balanced only: A won the initial coin flip. For team-draft, whether A picked first.
    """

    items: tuple[Hashable, ...]
    teams: tuple[str, ...]
    method: str
    ranking_a: tuple[Hashable, ...]
    ranking_b: tuple[Hashable, ...]
    a_first: bool


@dataclass(frozen=True, slots=True)
class Credit:
    """Clicks credited to A and B in one impression.

    For team-draft, ``clicks_a`` and ``clicks_b`` are clicks on each team's items. For
    balanced, they are ``h_a`` and ``h_b`` of Joachims' rule (clicked items within the top
    ``cutoff`` of each ranking). ``cutoff`` is ``None`` for team-draft and for impressions
    without clicks.
    """

    clicks_a: int
    clicks_b: int
    n_clicks: int
    cutoff: int | None = None

    @property
    def outcome(self) -> int:
        """+1 if A wins the impression, −1 if B wins, 0 for a tie (or no clicks)."""
        return int(np.sign(self.clicks_a - self.clicks_b))


def _check_rankings(
    ranking_a: Sequence[Hashable], ranking_b: Sequence[Hashable], k: int | None
) -> tuple[tuple[Hashable, ...], tuple[Hashable, ...], int]:
    a, b = tuple(ranking_a), tuple(ranking_b)
    for name, r in (("ranking_a", a), ("ranking_b", b)):
        seen: set[Hashable] = set()
        for item in r:
            if item in seen:
                raise InvalidInputError(
                    f"{name} lists item {item!r} more than once; a ranking must not repeat items",
                    field=name,
                )
            seen.add(item)
    union = len(set(a) | set(b))
    if k is None:
        return a, b, union
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise InvalidInputError(f"k must be a positive integer, got {k!r}", field="k")
    return a, b, min(int(k), union)


def team_draft(
    ranking_a: Sequence[Hashable],
    ranking_b: Sequence[Hashable],
    rng: np.random.Generator,
    *,
    k: int | None = None,
) -> Interleaving:
    """Team-draft interleaving (Radlinski, Kurup & Joachims 2008, Algorithm 1).

    Parameters
    ----------
    ranking_a, ranking_b : sequence of hashable
        Item ids, best first. They may overlap and differ in length; neither may repeat an
        item.
    rng : numpy.random.Generator
        Source of the coin flips (one per round in which the teams are the same size).
    k : int, optional
        Length of the merged list; defaults to (and is capped at) the number of distinct
        items in both rankings.

    Returns
    -------
    Interleaving
        While both rankings have unshown items, the team with fewer picks picks next (a
        coin flip on ties), so team sizes differ by at most one; each team's items appear in
        its ranker's relative order.
    """
    a, b, n = _check_rankings(ranking_a, ranking_b, k)
    shown: set[Hashable] = set()
    items: list[Hashable] = []
    teams: list[str] = []
    ia = ib = 0  # next candidate index in each ranking (items before it are all shown)
    size_a = size_b = 0
    a_first: bool | None = None
    while len(items) < n:
        while ia < len(a) and a[ia] in shown:
            ia += 1
        while ib < len(b) and b[ib] in shown:
            ib += 1
        if ib == len(b):
            pick_a = True
        elif ia == len(a):
            pick_a = False
        elif size_a != size_b:
            pick_a = size_a < size_b
        else:
            pick_a = bool(rng.random() < 0.5)
        if a_first is None:
            a_first = pick_a
        item = a[ia] if pick_a else b[ib]
        items.append(item)
        teams.append(TEAM_A if pick_a else TEAM_B)
        shown.add(item)
        size_a += pick_a
        size_b += not pick_a
    return Interleaving(tuple(items), tuple(teams), TEAM_DRAFT, a, b, bool(a_first))


def balanced(
    ranking_a: Sequence[Hashable],
    ranking_b: Sequence[Hashable],
    rng: np.random.Generator,
    *,
    k: int | None = None,
) -> Interleaving:
    """Balanced interleaving (Joachims 2002; Chapelle et al. 2012, §3.1).

    Parameters
    ----------
    ranking_a, ranking_b : sequence of hashable
        Item ids, best first; may overlap and differ in length, must not repeat an item.
    rng : numpy.random.Generator
        One coin flip: which ranker leads.
    k : int, optional
        Length of the merged list; defaults to (and is capped at) the number of distinct
        items.

    Returns
    -------
    Interleaving
        Pointers ``k_a``, ``k_b`` walk down A and B; the ranker whose pointer is behind (the
        leader on a tie) adds its next item unless already shown, then advances. Every prefix
        of the merged list is the union of the top-``k_a`` of A and top-``k_b`` of B with
        ``|k_a − k_b| ≤ 1``, as long as both rankings last.
    """
    a, b, n = _check_rankings(ranking_a, ranking_b, k)
    a_first = bool(rng.random() < 0.5)
    shown: set[Hashable] = set()
    items: list[Hashable] = []
    teams: list[str] = []
    ka = kb = 0
    while len(items) < n:
        if kb == len(b):
            take_a = True
        elif ka == len(a):
            take_a = False
        else:
            take_a = ka < kb or (ka == kb and a_first)
        if take_a:
            item, team = a[ka], TEAM_A
            ka += 1
        else:
            item, team = b[kb], TEAM_B
            kb += 1
        if item not in shown:
            items.append(item)
            teams.append(team)
            shown.add(item)
    return Interleaving(tuple(items), tuple(teams), BALANCED, a, b, a_first)


def interleave(
    ranking_a: Sequence[Hashable],
    ranking_b: Sequence[Hashable],
    rng: np.random.Generator,
    *,
    method: Method = "team_draft",
    k: int | None = None,
) -> Interleaving:
    """Merge two rankings with ``method`` (:func:`team_draft` or :func:`balanced`)."""
    if method == TEAM_DRAFT:
        return team_draft(ranking_a, ranking_b, rng, k=k)
    if method == BALANCED:
        return balanced(ranking_a, ranking_b, rng, k=k)
    raise InvalidInputError(
        f"method must be 'team_draft' or 'balanced', got {method!r}", field="method"
    )


def credit(interleaving: Interleaving, clicked: Iterable[Hashable]) -> Credit:
    """Credit the clicks of one impression to A and B.

    Parameters
    ----------
    interleaving : Interleaving
        What the user was shown.
    clicked : iterable of hashable
        Ids of the clicked items (order and repeats do not matter). Each must be in
        ``interleaving.items``.

    Returns
    -------
    Credit
        **Team-draft** (Radlinski et al. 2008, §4): ``clicks_a`` and ``clicks_b`` count
        clicks on each team's items; the team with more clicks wins.

        **Balanced** (Joachims 2002, §4; Chapelle et al. 2012, §3.1): let ``d_max`` be the
        lowest-ranked clicked item of the merged list and
        ``cutoff = min{j : a_j = d_max or b_j = d_max}`` (1-based ranks; an item absent from a
        ranking has rank ∞ there). Then ``h_a`` and ``h_b`` count clicked items among the top
        ``cutoff`` of A and of B; the ranker with more wins. Comparing equal-depth prefixes
        corrects for the user having looked at the top ``cutoff`` of both rankings.

        An impression without clicks is a tie with ``n_clicks == 0``.

    Raises
    ------
    InvalidInputError
        If a clicked id was not shown in the impression.
    """
    clicks = set(clicked)
    position = {item: i for i, item in enumerate(interleaving.items)}
    unknown = clicks - position.keys()
    if unknown:
        raise InvalidInputError(
            f"clicked items {sorted(map(repr, unknown))} were not shown in this impression",
            field="clicked",
        )
    if not clicks:
        return Credit(0, 0, 0)
    if interleaving.method == TEAM_DRAFT:
        on_a = sum(interleaving.teams[position[c]] == TEAM_A for c in clicks)
        return Credit(on_a, len(clicks) - on_a, len(clicks))
    lowest = max(clicks, key=position.__getitem__)
    ranks = [r.index(lowest) + 1 for r in (interleaving.ranking_a, interleaving.ranking_b)
             if lowest in r]  # fmt: skip
    cutoff = min(ranks)
    h_a = len(clicks.intersection(interleaving.ranking_a[:cutoff]))
    h_b = len(clicks.intersection(interleaving.ranking_b[:cutoff]))
    return Credit(h_a, h_b, len(clicks), cutoff)


def for_credit(interleaving: Interleaving) -> Interleaving:
    """The same impression with each ranking cut to the depth :func:`credit` can read.

    Logging both complete rankings with every impression makes the log, and its analysis,
    grow with the rankers' list length rather than with what was shown. Credit never needs
    more: team-draft credit reads only ``items`` and ``teams`` (the rankings become empty),
    and balanced credit reads ``ranking_a[:cutoff]`` and ``ranking_b[:cutoff]`` where
    ``cutoff`` is the best rank of a shown item in either ranking, so cutting both at
    ``depth = max over shown items of min(rank in A, rank in B)`` keeps every cutoff and
    prefix credit can ever use. ``credit(for_credit(il), c) == credit(il, c)`` for every
    ``c`` (tested on random impressions).
    """
    if interleaving.method == TEAM_DRAFT:
        return replace(interleaving, ranking_a=(), ranking_b=())
    rank_a = {item: r for r, item in enumerate(interleaving.ranking_a, 1)}
    rank_b = {item: r for r, item in enumerate(interleaving.ranking_b, 1)}
    inf = len(rank_a) + len(rank_b) + 1
    depth = max(
        (min(rank_a.get(i, inf), rank_b.get(i, inf)) for i in interleaving.items), default=0
    )
    return replace(
        interleaving,
        ranking_a=interleaving.ranking_a[:depth],
        ranking_b=interleaving.ranking_b[:depth],
    )


def count_outcomes(
    credits: Iterable[Credit], *, include_unclicked: bool = False
) -> tuple[int, int, int]:
    """``(wins_a, wins_b, ties)`` over impressions, for ``interleaving_test``.

    Impressions without clicks carry no preference and are dropped unless
    ``include_unclicked`` (then they count as ties and shrink Δ towards 0).
    """
    wins_a = wins_b = ties = 0
    for c in credits:
        if c.n_clicks == 0 and not include_unclicked:
            continue
        o = c.outcome
        wins_a += o > 0
        wins_b += o < 0
        ties += o == 0
    return wins_a, wins_b, ties


def outcomes_by_user(
    user_ids: Sequence[Hashable],
    credits: Sequence[Credit],
    *,
    include_unclicked: bool = False,
) -> tuple[list[Hashable], np.ndarray, np.ndarray, np.ndarray]:
    """Per-user ``(users, wins_a, wins_b, ties)`` for ``clustered_interleaving_test``.

    Parameters
    ----------
    user_ids : sequence of hashable
        The user of each impression.
    credits : sequence of Credit
        The credit of each impression, aligned with ``user_ids``.
    include_unclicked : bool, default False
        Count impressions without clicks as ties (see :func:`count_outcomes`).

    Returns
    -------
    users : list
        Distinct users, in order of first appearance.
    wins_a, wins_b, ties : numpy.ndarray of int64, shape (n_users,)
    """
    if len(user_ids) != len(credits):
        raise InvalidInputError(
            f"need one user id per impression; got {len(user_ids)} ids, {len(credits)} credits",
            field="user_ids",
        )
    index: dict[Hashable, int] = {}
    counts: list[list[int]] = []
    for user, c in zip(user_ids, credits, strict=True):
        if c.n_clicks == 0 and not include_unclicked:
            continue
        row = index.setdefault(user, len(counts))
        if row == len(counts):
            counts.append([0, 0, 0])
        o = c.outcome
        counts[row][0 if o > 0 else 1 if o < 0 else 2] += 1
    arr = np.array(counts, dtype=np.int64).reshape(-1, 3)
    return list(index), arr[:, 0], arr[:, 1], arr[:, 2]


__all__ = [
    "BALANCED",
    "TEAM_A",
    "TEAM_B",
    "TEAM_DRAFT",
    "Credit",
    "Interleaving",
    "balanced",
    "count_outcomes",
    "credit",
    "for_credit",
    "interleave",
    "outcomes_by_user",
    "team_draft",
]
