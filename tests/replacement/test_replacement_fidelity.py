"""Label-free replacement fidelity (methods.md section 5): agreement and KL against reference logits,
the evaluation sets of a model, and the tables with accuracy and fidelity side by side."""

import numpy as np
import pytest
import timm
import torch

from masterkey.core.config import validate_config
from masterkey.core.errors import ConfigError, StaleFileError
from masterkey.data.demo import DemoSettings
from masterkey.data.evalcache import EvalSet
from masterkey.data.natural import UNLABELLED
from masterkey.nets.depthwise import extract_kernels
from masterkey.replacement.build import VariantInputs
from masterkey.replacement.evaluation import (
    HELDOUT,
    NATURAL,
    best_idealized_method,
    evaluate_variant,
    evaluation_metrics,
    load_eval_set,
    load_reference_logits,
    reference_logits,
)
from masterkey.replacement.tables import replacement_table, stages_table

pytestmark = pytest.mark.usefixtures("few_threads")


# Layer scale 1 (timm's default 1e-6 mutes every block at initialisation, so kernels would not matter).
ARCHITECTURE = {"model_name": "convnext_atto", "pretrained": False, "num_classes": 5, "ls_init_value": 1.0}


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    model = timm.create_model(**ARCHITECTURE).eval()
    return model, VariantInputs(*extract_kernels(model, "tiny"))


def _copy(model):
    clone = timm.create_model(**ARCHITECTURE)
    clone.load_state_dict(model.state_dict())
    return clone.eval()


def _images(count=6, labelled=True):
    images = torch.randn(count, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    labels = np.arange(count) % 5 if labelled else np.full(count, UNLABELLED)
    return EvalSet(images, labels, mean=None, std=None, name="crops" if labelled else "photos")


def test_identical_networks_agree_exactly_and_a_replaced_one_does_not(network):
    model, inputs = network
    for labelled in (True, False):
        eval_set = _images(labelled=labelled)
        copy = _copy(model)  # each variant rewrites every depthwise kernel of it
        reference = reference_logits(copy, eval_set, batch_size=4, device="cpu")
        assert reference.shape == (6, 5) and reference.dtype == np.float32
        learned = evaluate_variant(copy, "tiny", "learned", inputs, eval_set, reference=reference,
                                   batch_size=4, device="cpu")  # fmt: skip
        assert learned["agreement"] == 1.0 and learned["kl"] == 0.0
        shuffled = evaluate_variant(copy, "tiny", "shuffled", inputs, eval_set, reference=reference, seed=1,
                                    batch_size=4, device="cpu")  # fmt: skip
        assert shuffled["agreement"] < 1 and shuffled["kl"] > 0
        assert ("top1" in shuffled) == labelled and shuffled["dataset"] == eval_set.name
    with pytest.raises(ValueError, match="no labels; fidelity needs reference logits"):
        evaluation_metrics(_images(labelled=False))


def test_reference_logits_must_match_the_evaluated_inputs(tmp_path):
    path = tmp_path / "reference_logits.npy"
    np.save(path, np.zeros((6, 5), np.float32))
    assert load_reference_logits(path, _images()).shape == (6, 5)
    assert load_reference_logits(path, _images(9), max_images=6).shape == (6, 5)
    with pytest.raises(StaleFileError, match="holds logits of shape \\(6, 5\\) but 9 inputs of crops") as err:
        load_reference_logits(path, _images(9))
    assert err.value.path == path


def test_every_model_gets_the_natural_set_in_its_own_preprocessing():
    demo = DemoSettings(crop_size=32)
    natural = load_eval_set(NATURAL, {"name": "demo", "timm_name": "convnext_atto"}, demo=demo,
                            natural_images=4)  # fmt: skip
    assert natural.name == NATURAL and natural.images.shape == (4, 3, 32, 32)
    lite = load_eval_set(NATURAL, {"name": "lite", "timm_name": "tf_efficientnet_lite0"}, natural_images=2)
    assert lite.images.shape == (2, 3, 224, 224) and lite.mean == (0.5, 0.5, 0.5)
    heldout = load_eval_set(HELDOUT, {"name": "demo"}, demo=DemoSettings(images=("camera", "coins"),
                            crop_size=32, max_image_side=128, val_crops_per_class=2))  # fmt: skip
    assert heldout.name == HELDOUT and len(heldout) == 4
    with pytest.raises(ConfigError, match="config key imagenet_val"):
        load_eval_set("imagenet_val", {"name": "m", "timm_name": "convnext_atto"})
    with pytest.raises(ValueError, match="unknown evaluation set 'val'"):
        load_eval_set("val", {"name": "demo"})


def _record(model, dataset, variant, agreement, kl, top1=None):
    record = {"model": model, "dataset": dataset, "variant": variant, "agreement": agreement, "kl": kl,
              "images": 8, "replaced": 3, "kept": 0, "relative_change_median": 0.5}  # fmt: skip
    return record | ({"top1": top1, "top5": 1.0} if top1 is not None else {})


def test_tables_show_accuracy_and_fidelity_side_by_side():
    records = [_record("m", NATURAL, "idealized-A", 0.5, 0.2), _record("m", NATURAL, "learned", 1.0, 0.0),
               _record("m", HELDOUT, "idealized-A", 0.75, 0.1, top1=0.6),
               _record("m", HELDOUT, "learned", 1.0, 0.0, top1=0.9),
               _record("lite", NATURAL, "learned", 1.0, 0.0),
               _record("lite", NATURAL, "idealized-A", 0.25, 3.0)]  # fmt: skip
    table = replacement_table(records, ["learned", "idealized-A"])
    assert list(zip(table["model"], table["dataset"], table["variant"], strict=True)) == [
        ("m", NATURAL, "learned"), ("m", NATURAL, "idealized-A"), ("m", HELDOUT, "learned"),
        ("m", HELDOUT, "idealized-A"), ("lite", NATURAL, "learned"), ("lite", NATURAL, "idealized-A")]
    np.testing.assert_allclose(table["top1_drop"], [np.nan, np.nan, 0.0, 0.3, np.nan, np.nan])
    np.testing.assert_allclose(table["agreement"], [1.0, 0.5, 1.0, 0.75, 1.0, 0.25])
    np.testing.assert_allclose(table["kl"], [0.0, 0.2, 0.0, 0.1, 0.0, 3.0])
    missing = r"no learned baseline for \(model, dataset\) \[\('lite', 'natural'\)\]"
    with pytest.raises(ValueError, match=missing):
        replacement_table(records[:4] + records[5:])
    stage = {"stage": 0, "method": "A"}
    stages = [_record("m", NATURAL, "stage0-idealized-A", 0.8, 0.05) | stage,
              _record("m", HELDOUT, "stage0-idealized-A", 0.9, 0.01, top1=0.85) | stage]  # fmt: skip
    staged = stages_table(stages, [records[1], records[3]])
    assert list(staged["dataset"]) == [NATURAL, HELDOUT]
    np.testing.assert_allclose(staged["top1_drop"], [np.nan, 0.05])
    np.testing.assert_allclose(staged["agreement"], [0.8, 0.9])


def test_best_idealized_method_without_labels_is_the_most_faithful():
    natural = [_record("m", NATURAL, "idealized-A", 0.5, 0.2), _record("m", NATURAL, "idealized-B", 0.7, 0.9),
               _record("m", NATURAL, "idealized-C1", 0.7, 0.4), _record("m", NATURAL, "learned", 1.0, 0.0)]
    assert best_idealized_method(natural) == "C1"  # best agreement, then the smaller KL
    labelled = [_record("m", HELDOUT, "idealized-A", 0.9, 0.1, top1=0.5),
                _record("m", HELDOUT, "idealized-B", 0.5, 0.9, top1=0.6)]
    assert best_idealized_method(labelled) == "B"  # top-1 decides where there are labels


def test_fidelity_images_must_be_a_positive_integer():
    assert validate_config({"models": ["demo"]})["replacement"]["fidelity_images"] == 256
    for bad in (0, 2.5, "many"):
        with pytest.raises(ConfigError) as err:
            validate_config({"models": ["demo"], "replacement": {"fidelity_images": bad}})
        assert err.value.key == "replacement.fidelity_images"
