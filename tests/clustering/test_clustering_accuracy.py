"""Classified share beside published top-1 across families (masterkey.clustering.accuracy)."""

import numpy as np
import pandas as pd
import pytest

from masterkey.clustering.accuracy import (
    ALL_SIZES,
    SHARE_COLUMNS,
    accuracy_trend,
    model_family,
    share_caption,
    share_vs_accuracy,
)

LITES = {
    "tf_efficientnet_lite0": 75.1,
    "tf_efficientnet_lite1": 76.7,
    "tf_efficientnet_lite2": 77.6,
}


def classification(shares: dict[str, dict[str, tuple[int, int]]]) -> pd.DataFrame:
    """A classification table with model-level rows (and one stage row that must be ignored)."""
    rows = []
    for model, sizes in shares.items():
        for size, (kernels, classified) in sizes.items():
            rows.append(
                {
                    "level": "model",
                    "model": model,
                    "kernel_size": size,
                    "kernels": kernels,
                    "classified": classified,
                    "mean_cosine": classified / kernels,
                }
            )
            rows.append(
                {
                    "level": "stage",
                    "model": model,
                    "kernel_size": size,
                    "kernels": 1,
                    "classified": 0,
                    "mean_cosine": 0.0,
                }
            )
    return pd.DataFrame(rows)


def specs(top1: dict[str, float | None]) -> dict:
    return {name: {"architecture": name, "published_top1": value} for name, value in top1.items()}


def test_pooled_row_sums_kernels_and_weights_cosines():
    table = share_vs_accuracy(
        classification({"tf_efficientnet_lite0": {"5x5": (100, 50), "3x3": (300, 270)}}),
        specs({"tf_efficientnet_lite0": 75.1}),
    )
    assert list(table.columns) == SHARE_COLUMNS
    assert table["kernel_size"].tolist() == ["3x3", "5x5", ALL_SIZES]  # sizes in numeric order
    pooled = table.iloc[-1]
    assert (pooled["kernels"], pooled["classified"]) == (400, 320)
    assert pooled["share"] == pytest.approx(0.8)
    assert pooled["mean_cosine"] == pytest.approx((300 * 0.9 + 100 * 0.5) / 400)
    assert set(table["family"]) == {"EfficientNet"}
    assert (table["published_top1"] == 75.1).all()


def test_planted_increasing_shares_give_rank_correlation_one():
    planted = {name: {"3x3": (1000, 700 + 50 * i)} for i, name in enumerate(LITES)}
    trend = accuracy_trend(share_vs_accuracy(classification(planted), specs(LITES)))
    assert trend.to_dict("records") == [
        {"kernel_size": "3x3", "models": 3, "spearman_rho": 1.0, "monotonic": True}
    ]


def test_planted_decreasing_shares_give_minus_one_and_not_monotonic():
    planted = {name: {"3x3": (1000, 900 - 50 * i)} for i, name in enumerate(LITES)}
    trend = accuracy_trend(share_vs_accuracy(classification(planted), specs(LITES)))
    assert trend["spearman_rho"].iloc[0] == pytest.approx(-1.0)
    assert not trend["monotonic"].iloc[0]


def test_models_without_published_top1_stay_in_the_table_but_not_in_the_trend():
    planted = {"demo": {"7x7": (10, 5)}, "tf_efficientnet_lite0": {"3x3": (10, 9)}}
    models = {
        "demo": {"architecture": "convnext_atto", "published_top1": None},
        **specs({"tf_efficientnet_lite0": 75.1}),
    }
    table = share_vs_accuracy(classification(planted), models)
    assert table["model"].tolist() == ["demo", "tf_efficientnet_lite0"]
    assert np.isnan(table["published_top1"].iloc[0])
    trend = accuracy_trend(table)
    assert trend["models"].tolist() == [1] and np.isnan(trend["spearman_rho"].iloc[0])
    assert trend["monotonic"].iloc[0] is None
    assert "1 model(s), no rank correlation" in share_caption(0.5, trend)


def test_stale_classification_table_is_rejected():
    with pytest.raises(ValueError, match="no row of model 'tf_efficientnet_lite1'.*stale"):
        share_vs_accuracy(classification({"tf_efficientnet_lite0": {"3x3": (1, 1)}}), specs(LITES))


@pytest.mark.parametrize(
    ("architecture", "family"),
    [
        ("convnext_tiny", "ConvNeXt"),
        ("convnextv2_atto", "ConvNeXt V2"),
        ("tf_efficientnet_lite2", "EfficientNet"),
        ("inception_next_atto", "InceptionNeXt"),
        ("not_a_timm_model", "not_a_timm_model"),
    ],
)
def test_model_family(architecture, family):
    assert model_family(architecture) == family


def test_chance_share_of_one_prototype_matches_the_beta_law():
    """(1 + c) / 2 ~ Beta((d - 1) / 2, (d - 1) / 2) for the cosine c of random centred kernels."""
    from scipy.stats import beta

    from masterkey.clustering.accuracy import chance_share

    prototype = np.random.default_rng(3).normal(size=(1, 3, 3))
    d = 3 * 3 - 1
    expected = beta.sf((1 + 0.5) / 2, (d - 1) / 2, (d - 1) / 2)  # about 0.09 for 3x3
    assert chance_share(prototype, 0.5, num=100_000, seed=1) == pytest.approx(expected, abs=0.005)
    # more prototypes, more chances; a 7x7 kernel has far fewer chance hits than a 3x3 one
    several = np.random.default_rng(4).normal(size=(12, 3, 3))
    assert chance_share(several, 0.5) > chance_share(prototype, 0.5)
    assert chance_share(np.random.default_rng(5).normal(size=(12, 7, 7)), 0.5) < 0.01
    with pytest.raises(ValueError, match=r"shape \(k, n, n\)"):
        chance_share(np.zeros((3, 3)), 0.5)


def test_chance_share_is_carried_per_size_and_weighted_in_the_pooled_row():
    table = share_vs_accuracy(
        classification({"tf_efficientnet_lite0": {"3x3": (300, 270), "5x5": (100, 50)}}),
        specs({"tf_efficientnet_lite0": 75.1}),
        chance={"3x3": 0.4, "5x5": 0.2},
    )
    assert table["chance_share"].tolist() == pytest.approx([0.4, 0.2, (300 * 0.4 + 100 * 0.2) / 400])
