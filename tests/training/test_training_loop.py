"""The one training loop: the schedule, what a step does, the log of fit, reproducibility."""

import copy
from functools import partial
from itertools import islice

import pytest
import torch
from torch import nn

from masterkey.training.loop import TrainStep, fit, training_steps, warmup_cosine
from masterkey.training.runtime import deterministic, threads


def test_learning_rate_schedule():
    assert warmup_cosine(0, 1.0, 10, 100) == pytest.approx(0.1)
    assert warmup_cosine(9, 1.0, 10, 100) == pytest.approx(1.0)
    assert warmup_cosine(10, 1.0, 10, 100) == pytest.approx(1.0)
    assert warmup_cosine(55, 1.0, 10, 100) == pytest.approx(0.5)
    assert warmup_cosine(100, 1.0, 10, 100) == pytest.approx(0.0)
    assert warmup_cosine(0, 0.5, 0, 4) == pytest.approx(0.5)  # no warm-up
    assert warmup_cosine(2, 0.5, 0, 4) == pytest.approx(0.25)


def random_batches(seed, batch_size=6, features=4, classes=3):
    """Endless (inputs, targets) from a generator seeded ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        inputs = torch.randn(batch_size, features, generator=generator)
        yield inputs, torch.randint(classes, (batch_size,), generator=generator)


def test_a_step_sets_the_lr_then_descends():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    start = copy.deepcopy(model)
    optimiser = torch.optim.SGD(model.parameters(), lr=123.0)  # overridden by lr_at
    batches = list(islice(random_batches(1), 2))
    loss_fn = nn.CrossEntropyLoss()
    steps = list(training_steps(model, batches, optimiser, loss_fn, lr_at=lambda step: 0.1 * (step + 1)))
    assert [s.step for s in steps] == [1, 2] and [s.lr for s in steps] == [0.1, pytest.approx(0.2)]
    assert all(isinstance(s, TrainStep) and s.size == 6 and not s.loss.requires_grad for s in steps)
    assert model.training
    # plain SGD by hand from the same start: w <- w - lr * grad, one batch after the other
    for (inputs, targets), lr, step in zip(batches, (0.1, 0.2), steps, strict=True):
        start.zero_grad()
        loss = loss_fn(start(inputs), targets)
        assert step.loss.item() == pytest.approx(loss.item())  # the loss before the step's update
        loss.backward()
        with torch.no_grad():
            for p in start.parameters():
                p -= lr * p.grad
    for ours, manual in zip(model.parameters(), start.parameters(), strict=True):
        torch.testing.assert_close(ours, manual)


def test_scheduler_is_stepped_after_each_step():
    model = nn.Linear(4, 3)
    optimiser = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimiser, step_size=1, gamma=0.5)
    log = fit(model, random_batches(0), optimiser, nn.CrossEntropyLoss(), 4, scheduler=scheduler)
    assert log["lr"].tolist() == [1.0, 0.5, 0.25, 0.125]


def test_fit_log_follows_warmup_cosine_and_evaluates_periodically():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    first_inputs, first_targets = next(random_batches(2))
    with torch.no_grad():
        first_loss = nn.functional.cross_entropy(model(first_inputs), first_targets).item()
    optimiser = torch.optim.AdamW(model.parameters(), lr=1.0)
    calls = []

    def evaluation():
        calls.append(len(calls))
        return {"val_accuracy": 0.5 + len(calls), "val_loss": 1.0}

    schedule = partial(warmup_cosine, base=0.01, warmup=2, total=7)
    log = fit(model, random_batches(2), optimiser, nn.CrossEntropyLoss(), 7, lr_at=schedule,
              evaluate_every=3, evaluation=evaluation)  # fmt: skip
    assert list(log.columns) == ["step", "lr", "train_loss", "val_accuracy", "val_loss"]
    assert log["step"].tolist() == list(range(1, 8))
    assert log["lr"].tolist() == [warmup_cosine(s, 0.01, 2, 7) for s in range(7)]
    assert log["train_loss"].iloc[0] == pytest.approx(first_loss)
    assert log["val_accuracy"].notna().tolist() == [
        False,
        False,
        True,
        False,
        False,
        True,
        True,
    ]  # 3, 6, last
    assert log["val_accuracy"].dropna().tolist() == [1.5, 2.5, 3.5] and len(calls) == 3
    no_eval = fit(nn.Linear(4, 3), random_batches(2), torch.optim.SGD(nn.Linear(4, 3).parameters(), lr=0.1),
                  nn.CrossEntropyLoss(), 2, evaluation=evaluation)  # fmt: skip
    assert list(no_eval.columns) == ["step", "lr", "train_loss"] and len(calls) == 3


def small_net():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.GELU(), nn.Conv2d(8, 8, 3, padding=1, groups=8),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5),
    )  # fmt: skip


def image_batches(seed):
    generator = torch.Generator().manual_seed(seed)
    while True:
        yield torch.randn(4, 3, 16, 16, generator=generator), torch.randint(5, (4,), generator=generator)


def train(model_seed, data_seed):
    torch.manual_seed(model_seed)
    model = small_net()
    optimiser = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.05)
    with threads(2), deterministic():
        log = fit(model, image_batches(data_seed), optimiser, nn.CrossEntropyLoss(label_smoothing=0.1), 6,
                  lr_at=partial(warmup_cosine, base=0.01, warmup=2, total=6))  # fmt: skip
    return model, log


def test_same_seeds_give_bitwise_identical_weights():
    a, log_a = train(0, 1)
    b, log_b = train(0, 1)
    for (key, value), other in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(value, other), key
    assert log_a["train_loss"].tolist() == log_b["train_loss"].tolist()
    c, _ = train(0, 2)  # other data, other weights: the seeds are what fixes the run
    assert not all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values(), strict=True)
    )
