"""The in-memory optimisation step (the kernel autoencoder's loop): what a step does, reproducibility."""

import copy
from itertools import islice

import pytest
import torch
from torch import nn

from masterkey.training.loop import TrainStep, training_steps
from masterkey.training.runtime import deterministic, threads


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
    steps = training_steps(
        model, islice(random_batches(0), 4), optimiser, nn.CrossEntropyLoss(), scheduler=scheduler
    )
    assert [step.lr for step in steps] == [1.0, 0.5, 0.25, 0.125]


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
        loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
        steps = training_steps(model, islice(image_batches(data_seed), 6), optimiser, loss_fn,
                               lr_at=lambda s: 0.01 * (s + 1) / 6)  # fmt: skip
        losses = [step.loss.item() for step in steps]
    return model, losses


def test_same_seeds_give_bitwise_identical_weights():
    a, log_a = train(0, 1)
    b, log_b = train(0, 1)
    for (key, value), other in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(value, other), key
    assert log_a == log_b and len(log_a) == 6
    c, _ = train(0, 2)  # other data, other weights: the seeds are what fixes the run
    assert not all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values(), strict=True)
    )
