"""The one evaluation loop: top-k counts, metrics against direct computations, input normalisation."""

from functools import partial

import numpy as np
import pytest
import timm
import torch
from scipy.special import rel_entr, softmax
from torch import nn

from masterkey.data.evalcache import EvalSet
from masterkey.training.evaluate import (
    Fidelity,
    Logits,
    MeanLoss,
    TopK,
    evaluate,
    fidelity_terms,
    tensor_batches,
    topk_correct,
)

pytestmark = pytest.mark.usefixtures("few_threads")


def test_topk_correct_on_planted_logits():
    logits = torch.tensor(
        [
            [9.0, 1, 2, 3, 4, 5],  # label 0 ranked 1st
            [3.0, 9, 8, 1, 4, 5],  # label 3 ranked 6th (last)
            [1.0, 2, 9, 8, 7, 6],  # label 4 ranked 3rd
            [6.0, 5, 4, 3, 2, 1],  # label 4 ranked 5th
        ]
    )
    labels = torch.tensor([0, 3, 4, 4])
    assert topk_correct(logits, labels).tolist() == [1, 3]
    assert topk_correct(logits, labels, ks=(1, 2, 3, 5, 6, 10)).tolist() == [1, 1, 2, 3, 4, 4]


class Recorder(nn.Module):
    """Logits = a fixed linear read-out of the mean colour; records every input it sees."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [-1, -1, -1]]))
        self.inputs = []

    def forward(self, x):
        self.inputs.append(x.clone())
        return x.mean(dim=(2, 3)) @ self.weight.T


def test_evaluate_matches_manual_computation():
    torch.manual_seed(0)
    model = timm.create_model("convnext_atto", num_classes=4, pretrained=False).eval()
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (8, 3, 32, 32), dtype=np.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    x = (torch.from_numpy(pixels).float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(
        std
    ).view(1, 3, 1, 1)
    with torch.no_grad():
        logits = model(x)
    predicted = logits.argmax(1).numpy()
    labels = predicted.copy()
    labels[4:] = (predicted[4:] + 1) % 4  # half right, half wrong at top-1
    second = logits.argsort(1, descending=True)[:, 1].numpy()
    labels[6:] = second[6:]
    result = evaluate(model, EvalSet(pixels, labels, mean, std, "t"), batch_size=3, device="cpu")
    assert result["top1"] == 0.5 and result["top5"] == 1.0  # k = min(5, 4 classes)
    assert result["images"] == 8 and result["device"] == "cpu"
    assert result["images_per_second"] == pytest.approx(8 / result["seconds"])
    assert evaluate(model, EvalSet(pixels, labels, mean, std, "t"), max_images=4)["top1"] == 1.0
    floats = evaluate(model, EvalSet(x, torch.from_numpy(labels), None, None, "f"), batch_size=5)
    assert floats["top1"] == 0.5
    with pytest.raises(ValueError, match="labels up to 7 but the model has 4 classes"):
        evaluate(model, EvalSet(pixels, np.arange(8), mean, std, "t"))
    recorder = Recorder()
    evaluate(recorder, EvalSet(pixels, labels, mean, std, "t"), batch_size=3)
    seen = torch.cat(recorder.inputs)
    assert [len(b) for b in recorder.inputs] == [3, 3, 2]
    assert seen.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(seen, x, rtol=0, atol=1e-6)


def planted_logits(n=23, classes=7, seed=0):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, classes, generator=generator, dtype=torch.float64).float()
    targets = torch.randint(classes, (n,), generator=generator)
    return logits, targets


def test_topk_and_mean_loss_agree_with_a_direct_computation():
    logits, targets = planted_logits()
    rank = (logits > logits[torch.arange(len(targets)), targets][:, None]).sum(1)  # 0 = best
    metrics = [
        TopK((1, 3, 5), names=("acc1", "acc3", "acc5")),
        MeanLoss(partial(nn.functional.cross_entropy, reduction="sum"), "loss_sum", reduction="sum"),
        MeanLoss(nn.functional.cross_entropy, "loss_mean", reduction="mean"),
    ]
    result = evaluate(nn.Identity(), tensor_batches(logits, targets, 5), metrics, device="cpu")
    assert result["images"] == 23 and result["device"] == "cpu"
    for k in (1, 3, 5):
        assert result[f"acc{k}"] == (rank < k).sum().item() / 23
    assert 0 < result["acc1"] < result["acc3"] < result["acc5"] < 1  # the planted ranks discriminate
    expected = nn.functional.cross_entropy(logits.double(), targets).item()
    assert result["loss_sum"] == pytest.approx(expected, rel=1e-6)
    assert result["loss_mean"] == pytest.approx(expected, rel=1e-6)
    # the reduction matters: a batch-mean loss declared as "sum" gives another number
    wrong = MeanLoss(nn.functional.cross_entropy, "wrong", reduction="sum")
    assert evaluate(nn.Identity(), tensor_batches(logits, targets, 5), [wrong], device="cpu")["wrong"] != (
        pytest.approx(expected, rel=1e-3)
    )
    default = evaluate(nn.Identity(), tensor_batches(logits, targets, 4), device="cpu")
    assert default["top1"] == result["acc1"] and default["top5"] == result["acc5"]


def test_metric_arguments_checked():
    with pytest.raises(ValueError, match="2 names for 3 values of k"):
        TopK((1, 2, 3), names=("a", "b"))
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'sum'"):
        MeanLoss(nn.functional.cross_entropy, reduction="none")
    assert np.isnan(MeanLoss(nn.functional.cross_entropy).compute()["loss"])
    assert TopK().compute() == {"top1": 0.0, "top5": 0.0}
    pixels = np.zeros((2, 3, 4, 4), dtype=np.uint8)
    with pytest.raises(ValueError, match="is empty"):
        evaluate(
            nn.Identity(), EvalSet(pixels, [0, 1], (0.5,) * 3, (0.5,) * 3, "e"), max_images=0, device="cpu"
        )


class ConvRecorder(nn.Module):
    """A convolution read out by its mean; records every input it sees."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3)
        self.inputs = []

    def forward(self, x):
        self.inputs.append(x.clone(memory_format=torch.preserve_format))
        return self.conv(x).mean(dim=(2, 3))


def test_uint8_images_are_normalised_and_memory_format_follows_channels_last():
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (7, 3, 12, 12), dtype=np.uint8)
    labels = rng.integers(0, 4, 7)
    mean, std = (0.2, 0.5, 0.7), (0.1, 0.3, 0.9)
    x = (torch.from_numpy(pixels).float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(
        std
    ).view(1, 3, 1, 1)
    eval_set = EvalSet(pixels, labels, mean, std, "u8")
    plain = ConvRecorder()
    result = evaluate(plain, eval_set, batch_size=4, device="cpu", channels_last=False)
    assert plain.conv.weight.is_contiguous()
    assert not plain.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert all(b.is_contiguous() for b in plain.inputs)
    assert [len(b) for b in plain.inputs] == [4, 3]
    torch.testing.assert_close(torch.cat(plain.inputs), x, rtol=0, atol=1e-6)
    last = ConvRecorder()
    assert evaluate(last, eval_set, batch_size=4, device="cpu")["top1"] == result["top1"]
    assert last.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert all(b.is_contiguous(memory_format=torch.channels_last) for b in last.inputs)
    torch.testing.assert_close(torch.cat(last.inputs), x, rtol=0, atol=1e-6)
    with torch.no_grad():
        logits = plain.conv(x).mean(dim=(2, 3))
    expected = (logits.argmax(1).numpy() == labels).mean()
    assert result["top1"] == pytest.approx(expected)


def test_fidelity_of_identical_outputs_is_agreement_one_and_kl_zero_exactly():
    logits, targets = planted_logits(n=29, classes=11)
    logits = logits * 30  # large logits: log_softmax must stay exact and finite
    batches = tensor_batches(logits, targets, 4)
    result = evaluate(nn.Identity(), batches, [Fidelity(logits.numpy())], device="cpu")
    assert result["agreement"] == 1.0 and result["kl"] == 0.0 and result["images"] == 29


def test_fidelity_on_planted_logits_matches_the_analytic_values():
    s = 1 / (1 + np.exp(-2.0))  # softmax of (2, 0): (s, 1 - s)
    reference = torch.tensor([[0.0, 0.0], [2.0, 0.0], [1000.0, 0.0], [1000.0, 0.0]])
    outputs = torch.tensor([[np.log(3.0), 0.0], [0.0, 2.0], [1000.0, 0.0], [0.0, 1000.0]])
    agree, kl = fidelity_terms(reference, outputs)
    assert agree.tolist() == [True, False, True, False] and kl.dtype == torch.float64
    # (1/2, 1/2) vs (3/4, 1/4); (s, 1-s) vs (1-s, s); identical; (1, e^-1000) vs (e^-1000, 1)
    expected = [0.5 * np.log(4 / 3), 2 * (2 * s - 1), 0.0, 1000.0]
    np.testing.assert_allclose(kl.numpy(), expected, rtol=1e-12, atol=1e-12)
    metric = Fidelity(reference)
    for start in (0, 3):  # two batches of 3 and 1 rows
        metric.update(outputs[start : start + 3], torch.full((3,), -1))
    assert metric.compute() == pytest.approx({"agreement": 0.5, "kl": np.mean(expected)}, rel=1e-12)


def test_fidelity_checks_the_reference_and_accuracy_refuses_unlabelled_sets():
    logits, _ = planted_logits(n=5)
    metric = Fidelity(logits)
    metric.update(logits[:3], torch.zeros(3))
    with pytest.raises(ValueError, match="3 inputs evaluated but the reference logits hold 5"):
        metric.compute()
    with pytest.raises(ValueError, match="6 inputs evaluated but the reference logits hold 5"):
        metric.update(logits[:3], torch.zeros(3))
    with pytest.raises(ValueError, match="must be"):
        fidelity_terms(logits, logits[:, :3])
    with pytest.raises(ValueError, match="has no labels; measure it with Fidelity"):
        TopK().update(logits, torch.full((5,), -1))


def test_logits_are_kept_in_input_order_and_one_pass_gives_accuracy_and_fidelity():
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, (7, 3, 12, 12), dtype=np.uint8)
    eval_set = EvalSet(pixels, rng.integers(0, 4, 7), (0.5,) * 3, (0.25,) * 3, "u8")
    model = ConvRecorder()
    kept = Logits()
    reference = evaluate(model, eval_set, [kept, TopK((1,))], batch_size=3, device="cpu")
    with torch.no_grad():
        direct = model(torch.cat(model.inputs)).numpy()
    assert kept.logits.shape == (7, 4) and kept.logits.dtype == np.float32
    np.testing.assert_allclose(kept.logits, direct, rtol=1e-5, atol=1e-6)
    assert reference["top1"] == (direct.argmax(1) == eval_set.labels).mean()
    noise = torch.randn(model.conv.weight.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.conv.weight.add_(noise)  # a perturbed network
        perturbed = model.conv(torch.cat(model.inputs[:3])).mean(dim=(2, 3)).double().numpy()
    both = evaluate(model, eval_set, [TopK((1,)), Fidelity(kept.logits)], batch_size=2, device="cpu")
    p, q = softmax(kept.logits.astype(np.float64), axis=1), softmax(perturbed, axis=1)
    assert both["top1"] == (perturbed.argmax(1) == eval_set.labels).mean()
    assert both["agreement"] == (perturbed.argmax(1) == direct.argmax(1)).mean() < 1
    assert both["kl"] == pytest.approx(rel_entr(p, q).sum(1).mean(), rel=1e-5) and both["kl"] > 0
