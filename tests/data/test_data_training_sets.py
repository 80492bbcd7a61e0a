"""Training sets: CIFAR-10 batches read back as written, ImageNet folders labelled as imagenet_val,
demo crops reproducible from the global seed, one ConfigError per unusable path."""

import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from conftest import TINY_IMAGE_FOLDER
from masterkey.core.config import validate_config
from masterkey.core.errors import ConfigError
from masterkey.data.demo import DemoDataset, build_demo_dataset
from masterkey.data.imagenet import find_imagenet_images
from masterkey.data.training_sets import (
    TRAINING_SETS,
    DemoCrops,
    cifar10_dataset,
    image_folder_dataset,
    require_dataset,
)

# ------------------------------------------------------------------------------------------ CIFAR-10


def test_cifar10_reads_back_the_written_pixels_and_labels(tiny_cifar10):
    train = cifar10_dataset(tiny_cifar10.root)
    assert len(train) == 100 and train.data.shape == (100, 32, 32, 3) and train.data.dtype == np.uint8
    np.testing.assert_array_equal(train.data, tiny_cifar10.train_images)  # batches 1..5 in order
    assert train.targets == tiny_cifar10.train_labels
    image, label = train[37]
    assert image.dtype == torch.uint8 and image.shape == (3, 32, 32)
    np.testing.assert_array_equal(image.permute(1, 2, 0).numpy(), tiny_cifar10.train_images[37])
    assert label == tiny_cifar10.train_labels[37] and isinstance(label, int)
    test = cifar10_dataset(tiny_cifar10.root, train=False)
    assert len(test) == 20
    np.testing.assert_array_equal(test.data, tiny_cifar10.test_images)
    assert test.targets == tiny_cifar10.test_labels


def test_cifar10_row_layout_is_colour_planes(tmp_path):
    """One pixel pinned by hand: row r, column c, channel k is data[k * 1024 + r * 32 + c]."""
    rows = np.zeros((1, 3072), dtype=np.uint8)
    rows[0, 1 * 1024 + 2 * 32 + 5] = 200  # green, row 2, column 5
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": rows, b"labels": [3]}))
    (tmp_path / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"c%d" % i for i in range(10)]}))
    image, label = cifar10_dataset(tmp_path, train=False)[0]
    assert label == 3 and image[1, 2, 5] == 200 and int(image.sum()) == 200


def test_cifar10_root_may_be_the_batch_folder_and_names_the_classes(tiny_cifar10):
    parent = cifar10_dataset(tiny_cifar10.root)
    batches = cifar10_dataset(tiny_cifar10.root / "cifar-10-batches-py")
    np.testing.assert_array_equal(parent.data, batches.data)
    assert parent.classes == batches.classes == tiny_cifar10.classes and parent.num_classes == 10
    assert str(parent.root).endswith("cifar-10-batches-py")


def test_cifar10_transform_gets_a_pil_image(tiny_cifar10):
    test = cifar10_dataset(
        tiny_cifar10.root, train=False, transform=lambda im: (im.mode, im.size, np.asarray(im))
    )
    (mode, size, pixels), label = test[4]
    assert mode == "RGB" and size == (32, 32) and label == tiny_cifar10.test_labels[4]
    np.testing.assert_array_equal(pixels, tiny_cifar10.test_images[4])


def test_cifar10_incomplete_or_foreign_files_are_config_errors(tiny_cifar10, tmp_path):
    batches = tiny_cifar10.root / "cifar-10-batches-py"
    (tmp_path / "batches.meta").write_bytes((batches / "batches.meta").read_bytes())
    (tmp_path / "test_batch").write_bytes((batches / "test_batch").read_bytes())
    assert len(cifar10_dataset(tmp_path, train=False)) == 20
    with pytest.raises(
        ConfigError, match=r"lacks the CIFAR-10 file\(s\) data_batch_1, .*data_batch_5"
    ) as info:
        cifar10_dataset(tmp_path, train=True)
    assert info.value.key == "cifar10"
    (tmp_path / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(ConfigError, match="test_batch is not a CIFAR-10 python batch"):
        cifar10_dataset(tmp_path, train=False)


# ------------------------------------------------------------------------------- ImageNet class folders


def test_image_folder_labels_follow_the_imagenet_val_convention(tiny_image_folder):
    train = image_folder_dataset(tiny_image_folder)
    val_paths, val_labels = find_imagenet_images(tiny_image_folder)  # the imagenet_val labelling
    val_by_path = {str(p): int(label) for p, label in zip(val_paths, val_labels, strict=True)}
    assert {path: label for path, label in train.samples} == val_by_path
    assert sorted(set(train.targets)) == [0, 1, 999]  # n01440764, n01443537, n15075141
    assert train.num_classes == 1000 and len(train.classes) == 1000
    assert all(train.classes[label] == path.split("/")[-2] for path, label in train.samples)
    assert len(train) == sum(TINY_IMAGE_FOLDER.values())
    image, label = train[0]
    assert image.dtype == torch.uint8 and image.shape == (3, 24, 20) and label == 0


def test_image_folder_of_other_names_uses_sorted_positions(tiny_image_folder, tmp_path):
    for name, source in (("zebra", "n01440764"), ("apple", "n15075141")):
        (tmp_path / name).mkdir()
        for image in (tiny_image_folder / source).iterdir():
            (tmp_path / name / image.name).write_bytes(image.read_bytes())
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "empty").mkdir()
    train = image_folder_dataset(tmp_path, transform=lambda im: im.size)
    assert train.classes == ["apple", "empty", "zebra"] and train.num_classes == 3
    _, val_labels = find_imagenet_images(tmp_path)
    assert train.targets == val_labels.tolist() == [0, 0, 2, 2, 2]
    assert train[0] == ((20, 24), 0)


# ------------------------------------------------------------------------------------------ demo crops


def _demo(crop_size=8) -> DemoDataset:
    """Two classes whose region pixels are unique numbers, so a crop tells where it came from."""
    regions = [torch.arange(3 * 20 * 30, dtype=torch.float32).view(3, 20, 30) + 10_000 * c for c in range(2)]
    return DemoDataset(
        ["a", "b"], regions, torch.zeros(0, 3, crop_size, crop_size), torch.zeros(0), crop_size
    )


def _locate(crop: torch.Tensor, region: torch.Tensor) -> tuple[int, int, bool]:
    """(top, left, flipped) of ``crop`` in ``region``: asserts that exactly one window equals it."""
    size = crop.shape[-1]
    windows = region.unfold(1, size, 1).unfold(2, size, 1)  # (3, rows, cols, size, size)
    found = [
        (top, left, flipped)
        for flipped, candidate in ((False, crop), (True, crop.flip(-1)))
        for top, left in torch.nonzero((windows == candidate[:, None, None]).all(-1).all(-1).all(0)).tolist()
    ]
    assert len(found) == 1, f"the crop matches {len(found)} windows of the region"
    return found[0]


def test_demo_crops_are_seeded_by_the_global_rng_and_lie_in_the_training_regions():
    dataset = _demo()
    crops = DemoCrops(dataset, epoch_size=40)
    assert len(crops) == 40 and crops.num_classes == 2 and crops.classes == ["a", "b"]
    seen = set()
    for i in range(40):
        torch.manual_seed(i)
        image, label = crops[i]
        torch.manual_seed(i)
        again, _ = crops[i]
        assert torch.equal(image, again)
        assert label == i % 2 and image.shape == (3, 8, 8) and image.dtype == torch.float32
        seen.add(_locate(image, dataset.train_regions[label]))
    assert {flipped for _, _, flipped in seen} == {True, False}
    assert len({(top, left) for top, left, _ in seen}) > 30  # positions vary with the seed
    with pytest.raises(IndexError):
        crops[40]


def test_demo_crops_of_the_real_demo_task():
    dataset = build_demo_dataset(["camera", "coins"], 32, 0.25, 1, 128, seed=0)
    crops = DemoCrops(dataset)
    assert len(crops) == 2 * 256
    region = dataset.train_regions[1]
    before, flips = region.clone(), set()
    for seed in range(6):
        torch.manual_seed(seed)
        image, label = crops[3]
        assert label == 1 and image.shape == (3, 32, 32)
        flips.add(_locate(image, region)[2])
        image[:] = 0  # a copy, not a view of the region
    assert flips == {False, True} and torch.equal(region, before)


class _SeededPerSample(Dataset):
    """What the training engine does: the global RNG seeded by the sample index before each item."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        torch.manual_seed(index)
        return self.dataset[index]


def test_demo_crops_are_the_same_for_any_number_of_workers():
    seeded = _SeededPerSample(DemoCrops(_demo(), epoch_size=24))
    batches = {
        workers: [tuple(b) for b in DataLoader(seeded, batch_size=6, num_workers=workers)]
        for workers in (0, 2)
    }
    assert len(batches[0]) == 4
    for (images0, labels0), (images2, labels2) in zip(batches[0], batches[2], strict=True):
        assert torch.equal(images0, images2) and torch.equal(labels0, labels2)
    assert labels0.tolist() == [0, 1] * 3


# ------------------------------------------------------------------------------------- unusable paths


@pytest.mark.parametrize("key", ["imagenet_train", "cifar10"])
def test_unset_missing_or_empty_paths_name_the_key_and_the_fix(key, tmp_path):
    fix = {"imagenet_train": "one folder per class", "cifar10": "cifar-10-python.tar.gz extracted"}[key]
    build = TRAINING_SETS[key]
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.tar.gz").write_bytes(b"")
    cases = {
        None: "is not set",
        "": "is not set",
        str(tmp_path / "absent"): "does not exist",
        str(tmp_path / "file.tar.gz"): "is not a folder (an archive: extract it first)",
        str(tmp_path / "empty"): "holds no",
    }
    for path, cause in cases.items():
        for check in (lambda p: require_dataset(key, p), build):
            with pytest.raises(ConfigError) as info:
                check(path)
            message = str(info.value)
            assert info.value.key == key and message.startswith(f"config key {key}: ")
            assert cause in message and f"set {key}: " in message and fix in message, message


def test_image_folder_without_class_folders_is_a_config_error(tmp_path, tiny_image_folder):
    image = next((tiny_image_folder / "n01440764").iterdir())
    (tmp_path / image.name).write_bytes(image.read_bytes())  # an image, but no class folder
    (tmp_path / "n01443537").mkdir()  # a class folder, but no image
    (tmp_path / "n01443537" / "notes.txt").write_text("no image")
    with pytest.raises(ConfigError, match="holds no class folders with images .* sort them into one folder"):
        image_folder_dataset(tmp_path)
    assert require_dataset("imagenet_train", tiny_image_folder) == tiny_image_folder


def test_cifar_folder_without_batches_is_a_config_error(tmp_path, tiny_cifar10):
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "cifar-10-batches-py" / "readme.html").write_text("")
    with pytest.raises(ConfigError, match="holds no CIFAR-10 python batches .* neither directly nor in"):
        cifar10_dataset(tmp_path)
    batches = tiny_cifar10.root / "cifar-10-batches-py"
    assert require_dataset("cifar10", tiny_cifar10.root) == require_dataset("cifar10", batches) == batches


def test_config_keys_default_to_null_and_take_paths():
    config = validate_config({"models": ["demo"]})
    assert config["imagenet_train"] is None and config["cifar10"] is None
    config = validate_config({"models": ["demo"], "imagenet_train": "/data/train", "cifar10": "/data/c10"})
    assert (config["imagenet_train"], config["cifar10"]) == ("/data/train", "/data/c10")
    with pytest.raises(ConfigError, match="cifar10"):
        validate_config({"models": ["demo"], "cifar10": 10})
