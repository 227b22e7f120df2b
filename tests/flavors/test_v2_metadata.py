"""OIP v2 model metadata (``GET /v2/models/{name}``) describes the tensors inference returns.

For each flavor the outputs the metadata declares (name, datatype, shape with ``-1`` for any
size) are checked against a real infer response: a binary and a multiclass LightGBM Booster
(``predictions`` is P(class 1) ``[-1]``, or the rows x classes matrix ``[-1, 3]``) and a
scikit-learn classifier pipeline (class labels, and ``probabilities``). PyTorch's check is in
test_pytorch.py, next to its fixtures.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from arbiter.demo.traffic import wait_for_arms_loaded
from tests.flavors.lgbm_text_flow import assert_v2_metadata_describes, send, sent


@pytest.mark.parametrize(
    ("model", "rows_of", "expected"),
    [
        ("lgbm", "lgbm_rows", {"predictions": ("FP64", [-1]), "probabilities": ("FP64", [-1, 2])}),
        (
            "lgbm3",
            "lgbm_rows",
            {"predictions": ("FP64", [-1, 3]), "probabilities": ("FP64", [-1, 3])},
        ),
        ("text", "text_rows", {"predictions": ("INT64", [-1]), "probabilities": ("FP64", [-1, 2])}),
    ],
)
def test_v2_metadata_outputs_are_what_infer_returns(
    lgbm_text_gateway: Any, lgbm_text_registry: Any, model: str, rows_of: str, expected: Any
) -> None:
    server, _ = lgbm_text_gateway({model: {}})
    wait_for_arms_loaded(server.url, model)
    rows = getattr(lgbm_text_registry, rows_of)[:4]
    with httpx.Client(base_url=server.url) as client:
        infer = sent(send(client, model, "v2", rows, "u1"), "v2", 4).body
        assert_v2_metadata_describes(client, model, infer)
        declared = client.get(f"/v2/models/{model}").json()["outputs"]
    assert {o["name"]: (o["datatype"], o["shape"]) for o in declared} == expected


def test_v2_metadata_of_a_given_version(lgbm_text_gateway: Any, lgbm_text_registry: Any) -> None:
    server, _ = lgbm_text_gateway({"lgbm3": {}})
    wait_for_arms_loaded(server.url, "lgbm3")
    version = lgbm_text_registry.versions["lgbm3"]["champion"]
    with httpx.Client(base_url=server.url) as client:
        latest = client.get("/v2/models/lgbm3").json()
        pinned = client.get(f"/v2/models/lgbm3/versions/{version}")
        assert pinned.status_code == 200, pinned.text
        assert pinned.json() == latest
        missing = client.get("/v2/models/lgbm3/versions/99")
    assert missing.status_code == 404 and "'99'" in missing.json()["error"]
