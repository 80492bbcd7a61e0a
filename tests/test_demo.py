"""The embedded demo: disjoint splits, determinism, training on a tiny budget."""

import numpy as np
import pytest
import torch

from conftest import TINY_DEMO
from masterkey.config import validate_config
from masterkey.conventions import centre_share
from masterkey.demo_data import build_demo_dataset, load_bundled_image, split_train_val
from masterkey.errors import UserError
from masterkey.train_demo import depthwise_structure, learning_rate, train_demo_model


def tiny_demo():
    return validate_config({"models": ["demo"], "demo": dict(TINY_DEMO)})["demo"]


def test_train_and_validation_regions_are_disjoint_and_complete():
    image = np.arange(60 * 100 * 3, dtype=np.float32).reshape(60, 100, 3)
    train, val = split_train_val(image, 0.25)
    assert train.shape == (60, 75, 3) and val.shape == (60, 25, 3)
    assert not set(train.ravel()) & set(val.ravel())
    tall_train, tall_val = split_train_val(image.transpose(1, 0, 2), 0.25)
    assert tall_train.shape[0] == 75 and tall_val.shape[0] == 25


def test_bundled_images_load_offline_as_rgb():
    image = load_bundled_image("camera", max_side=128)  # a grey image
    assert image.shape == (128, 128, 3) and image.dtype == np.float32
    assert 0 <= image.min() and image.max() <= 1


def test_bad_images_rejected():
    with pytest.raises(UserError, match="not a scikit-image bundled image"):
        load_bundled_image("no_such_image", 128)
    with pytest.raises(UserError, match="smaller than demo.crop_size"):
        build_demo_dataset(
            ["camera", "text"], crop_size=64, val_fraction=0.1, val_crops_per_class=1, max_side=128, seed=0
        )


def test_validation_set_is_seeded():
    a = build_demo_dataset(["camera", "coins"], 32, 0.25, 3, 128, seed=0)
    b = build_demo_dataset(["camera", "coins"], 32, 0.25, 3, 128, seed=0)
    c = build_demo_dataset(["camera", "coins"], 32, 0.25, 3, 128, seed=1)
    torch.testing.assert_close(a.val_images, b.val_images, rtol=0, atol=0)
    assert not torch.equal(a.val_images, c.val_images)
    assert a.val_labels.tolist() == [0, 0, 0, 1, 1, 1]
    images, labels = a.sample_batch(5, torch.Generator().manual_seed(0))
    assert images.shape == (5, 3, 32, 32) and labels.shape == (5,)


def test_learning_rate_schedule():
    assert learning_rate(0, 1.0, 10, 100) == pytest.approx(0.1)
    assert learning_rate(9, 1.0, 10, 100) == pytest.approx(1.0)
    assert learning_rate(10, 1.0, 10, 100) == pytest.approx(1.0)
    assert learning_rate(55, 1.0, 10, 100) == pytest.approx(0.5)
    assert learning_rate(100, 1.0, 10, 100) == pytest.approx(0.0)


def test_tiny_training_is_deterministic(published_filters):
    model_a, _, log_a, summary_a = train_demo_model(tiny_demo(), seed=3, references=published_filters)
    model_b, _, log_b, summary_b = train_demo_model(tiny_demo(), seed=3, references=published_filters)
    for key, value in model_a.state_dict().items():
        torch.testing.assert_close(value, model_b.state_dict()[key], rtol=0, atol=0)
    assert log_a["train_loss"].tolist() == log_b["train_loss"].tolist()
    assert list(log_a["step"]) == [1, 2, 3] and log_a["val_accuracy"].notna().sum() == 2
    assert summary_a["chance_accuracy"] == pytest.approx(1 / 3)
    assert summary_a["num_val_images"] == 12
    for when in ("structure_before", "structure_after"):
        assert summary_a[when]["num_kernels"] == 1840
        assert 0 < summary_a[when]["centre_share_mean"] < 1
        assert 0 < summary_a[when]["max_abs_cosine_median"] < 1


def test_structure_measures_detect_planted_structure(published_filters):
    """A network whose kernels are the published filters scores 1 on the cosine measure."""
    import timm

    model = timm.create_model("convnext_atto", pretrained=False)
    with torch.no_grad():
        for stage in model.stages:
            for block in stage.blocks:
                weight = block.conv_dw.weight
                weight[:, 0] = torch.from_numpy(published_filters[np.arange(len(weight)) % 8])
    structure = depthwise_structure(model, published_filters)
    assert structure["max_abs_cosine_median"] == pytest.approx(1.0)
    expected_share = np.mean(centre_share(published_filters))
    assert structure["centre_share_mean"] == pytest.approx(expected_share, rel=0.05)
