"""``arbiter split``: change a running A/B or A/B/n experiment's split without a restart.

The change is written to the registry (the model's experiment control tag, see
:mod:`arbiter.experiments.split_store`) and recorded in the history; every gateway worker and
replica applies it within one registry poll interval. Assignment stays monotonic: raising a
challenger's share only moves units from the champion into it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from arbiter.cli.options import HomeOption, JsonOption, ModelOption

ReasonOption = typer.Option(None, "--reason", help="Why (kept in the history).")


def control_service(home: Path, model: str) -> Any:
    """The experiment control of MODEL in HOME's registry (one-line errors otherwise)."""
    from arbiter.errors import NotFoundError
    from arbiter.experiments import ExperimentControl
    from arbiter.home import Home
    from arbiter.registry import MLflowRegistry

    h = Home.at(home)
    config = h.config()
    if model not in config.models:
        raise NotFoundError(
            f"model {model!r} is not configured in {h.config_path}; configured: "
            f"{sorted(config.models) or 'none'}"
        )
    registry = MLflowRegistry(
        h.tracking_uri(config),
        registry_uri=config.registry.registry_uri,
        artifact_location=h.artifact_location(),
    )
    return ExperimentControl(
        registry, model, config.models[model], poll_interval_s=config.registry.poll_interval_s
    )


def parse_challenger_shares(values: list[str]) -> dict[str, float]:
    """``ALIAS=SHARE`` options as a mapping (a one-line error naming the bad one)."""
    from arbiter.errors import InvalidInputError

    out: dict[str, float] = {}
    for value in values:
        alias, sep, share = value.partition("=")
        try:
            if not sep or not alias.strip():
                raise ValueError
            out[alias.strip()] = float(share)
        except ValueError:
            raise InvalidInputError(
                f"--challenger takes ALIAS=SHARE (e.g. lr2=0.2), got {value!r}",
                field=f"challenger.{alias.strip() or value}",
            ) from None
    return out


def print_result(result: dict[str, Any], as_json: bool, what: str) -> None:
    from arbiter.cli.output import print_json

    if as_json:
        print_json(result)
        return
    shares = result.get("shares")
    split = "champion only" if shares is None else ", ".join(
        f"{arm} {share:.1%}" for arm, share in shares.items()
    )  # fmt: skip
    typer.echo(f"{result['model']}: experiment {result['experiment']} {result['status']} ({split})")
    if result.get("unchanged"):
        typer.echo(f"{what}: nothing to do, {result['unchanged']}")
    else:
        typer.echo(f"{what}: recorded; gateways apply it within one registry poll interval")


def split(
    model: str = ModelOption,
    home: Path = HomeOption,
    share: float = typer.Option(
        None, "--share", help="A/B: the challenger's new share of units (0 to 1)."
    ),
    challenger: list[str] = typer.Option(
        [], "--challenger", help="A/B/n: ALIAS=SHARE, once per challenger to change."
    ),
    reason: str | None = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Change the split of MODEL's running A/B (--share) or A/B/n (--challenger) experiment."""
    from arbiter.errors import InvalidInputError

    shares = parse_challenger_shares(challenger)
    if share is not None:
        shares["challenger"] = share
    if not shares:
        raise InvalidInputError("give --share (A/B) or --challenger ALIAS=SHARE (A/B/n)",
                                field="share")  # fmt: skip
    result = control_service(home, model).set_split(shares, reason=reason)
    print_result(result, as_json, "split")
