"""ImageNet-style evaluation folders: class folders, flat folders with label files, layout errors."""

import numpy as np
import pytest
import scipy.io
from timm.data import ImageNetInfo

from conftest import make_image
from masterkey.core.errors import UserError
from masterkey.data.imagenet import file_list_fingerprint, find_imagenet_images

WNIDS = ImageNetInfo().label_names()  # sorted: position = ImageNet-1k class index




def write_images(folder, names, size=(60, 45)):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        make_image(i, size[1], size[0]).save(folder / name)


def test_class_folders_with_wnids_get_imagenet_indices(tmp_path):
    chosen = ["n15075141", "n01440764", "n02119789"]  # last, first and the devkit's ID 1 (kit fox)
    for wnid in chosen:
        write_images(tmp_path / wnid, ["b.JPEG", "a.jpg"])
    write_images(tmp_path / "n01440764" / "nested", ["c.png"])
    (tmp_path / "n01440764" / "notes.txt").write_text("not an image")
    (tmp_path / "n01440764" / ".hidden.jpg").write_text("not an image either")
    paths, labels = find_imagenet_images(tmp_path)
    assert labels.dtype == np.int64
    relative = [p.relative_to(tmp_path).as_posix() for p in paths]
    assert relative == [
        "n01440764/a.jpg", "n01440764/b.JPEG", "n01440764/nested/c.png",
        "n02119789/a.jpg", "n02119789/b.JPEG", "n15075141/a.jpg", "n15075141/b.JPEG",
    ]  # fmt: skip
    kit_fox = WNIDS.index("n02119789")
    assert labels.tolist() == [0, 0, 0, kit_fox, kit_fox, 999, 999]
    assert 0 < kit_fox < 999


def test_class_folders_with_other_names_use_sorted_position(tmp_path):
    write_images(tmp_path / "dog", ["1.png"])
    write_images(tmp_path / "cat", ["1.png", "2.png"])
    (tmp_path / "ant").mkdir()  # empty class: still counts, as in torchvision's ImageFolder
    paths, labels = find_imagenet_images(tmp_path)
    assert [p.parent.name for p in paths] == ["cat", "cat", "dog"]
    assert labels.tolist() == [1, 1, 2]


def test_flat_folder_with_plain_label_file(tmp_path):
    root = tmp_path / "val"
    write_images(root, ["b.png", "a.JPEG", "c.jpg"])
    (root / "labels.txt").write_text("# file label\na.JPEG 3\nb.png n01443537\n\nc.jpg 999  # last\n")
    paths, labels = find_imagenet_images(root)
    assert [p.name for p in paths] == ["a.JPEG", "b.png", "c.jpg"]
    assert labels.tolist() == [3, 1, 999]
    elsewhere = tmp_path / "my_labels.txt"  # any name, anywhere, when given explicitly
    elsewhere.write_text("a.JPEG 5\nb.png 6\nc.jpg 7\n")
    assert find_imagenet_images(root, labels_file=elsewhere)[1].tolist() == [5, 6, 7]


def test_flat_folder_with_kaggle_csv_four_levels_up(tmp_path):
    root = tmp_path / "ILSVRC" / "Data" / "CLS-LOC" / "val"
    names = [f"ILSVRC2012_val_{i:08d}.JPEG" for i in (2, 1, 3)]
    write_images(root, names)
    (tmp_path / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\n"
        "ILSVRC2012_val_00000001,n02119789 255 142 454 329 n02119789 44 21 322 295\n"
        "ILSVRC2012_val_00000003,n15075141 1 2 3 4\n"
        "ILSVRC2012_val_00000002,n01440764 5 6 7 8\n"
    )
    paths, labels = find_imagenet_images(root)
    assert [p.name for p in paths] == sorted(names)
    assert labels.tolist() == [WNIDS.index("n02119789"), 0, 999]


def write_devkit(folder, id_to_wnid: dict[int, str]):
    """A meta.mat with the devkit's structure: a 'synsets' struct array (leaves have ILSVRC2012_ID
    1..1000 in the devkit's own order, not sorted by WordNet id) plus one non-leaf synset."""
    fields = ["ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "wordnet_height", "num_train_images"]
    entries = [(i, w, "words", "gloss", 0, 0, 1300) for i, w in id_to_wnid.items()]
    entries.append((1001, "n00001740", "entity", "gloss", 3, 18, 0))
    synsets = np.zeros(len(entries), dtype=[(f, "O") for f in fields])
    for row, entry in enumerate(entries):
        synsets[row] = entry
    folder.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(folder / "meta.mat", {"synsets": synsets})


def test_flat_folder_with_devkit_ground_truth(tmp_path):
    root = tmp_path / "val"
    write_images(root, [f"ILSVRC2012_val_{i:08d}.JPEG" for i in (1, 2, 3, 4)])
    data = tmp_path / "ILSVRC2012_devkit_t12" / "data"
    write_devkit(data, {1: "n02119789", 2: "n02100735", 449: "n01440764", 1000: "n15075141"})
    (data / "ILSVRC2012_validation_ground_truth.txt").write_text("449\n1\n1000\n1\n")
    paths, labels = find_imagenet_images(root)
    assert [p.name for p in paths] == [f"ILSVRC2012_val_{i:08d}.JPEG" for i in (1, 2, 3, 4)]
    kit_fox = WNIDS.index("n02119789")
    assert labels.tolist() == [0, kit_fox, 999, kit_fox]
    (data / "meta.mat").unlink()
    with pytest.raises(UserError, match="meta.mat"):
        find_imagenet_images(root)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "config key imagenet_val: evaluation images: .* does not exist; set it"),
        ("file", "config key imagenet_val: .* is not a folder"),
        ("empty", "no images"),
        ("only_subfolders_empty", "no images"),
        ("no_label_file", "no label file was found"),
        ("unlabeled", "1 of 3 images .* have no entry"),
        ("extra_entries", "lists 4 images but .* holds 3"),
        ("bad_label", "outside 0..999"),
        ("unknown_wnid", "not one of the 1000"),
        ("two_label_files", "several label files"),
        ("mixed", "directly and in subfolders"),
    ],
)
def test_layout_errors_name_path_and_expectation(tmp_path, setup, message):
    root = tmp_path / "val"
    if setup == "file":
        root.write_text("x")
    elif setup != "missing":
        root.mkdir()
    if setup == "only_subfolders_empty":
        (root / "n01440764").mkdir()
    if setup in ("no_label_file", "unlabeled", "extra_entries", "bad_label", "unknown_wnid",
                 "two_label_files", "mixed"):  # fmt: skip
        write_images(root, ["a.png", "b.png", "c.png"])
    lines = {
        "unlabeled": "a.png 1\nb.png 2\n",
        "extra_entries": "a.png 1\nb.png 2\nc.png 3\nd.png 4\n",
        "bad_label": "a.png 1\nb.png 1000\nc.png 3\n",
        "unknown_wnid": "a.png 1\nb.png n99999999\nc.png 3\n",
        "two_label_files": "a.png 1\nb.png 2\nc.png 3\n",
        "mixed": "a.png 1\nb.png 2\nc.png 3\n",
    }
    if setup in lines:
        (root / "labels.txt").write_text(lines[setup])
    if setup == "two_label_files":
        (tmp_path / "val.txt").write_text(lines[setup])
    if setup == "mixed":
        write_images(root / "n01440764", ["d.png"])
    with pytest.raises(UserError, match=message) as info:
        find_imagenet_images(root)
    assert str(root) in str(info.value) or "label file" in str(info.value)


def test_fingerprint_changes_with_files_labels_and_sizes(tmp_path):
    write_images(tmp_path / "a", ["1.png", "2.png"])
    paths, labels = find_imagenet_images(tmp_path)
    first = file_list_fingerprint(paths, labels, tmp_path)
    assert first == file_list_fingerprint(paths, labels, tmp_path)
    # default root: the images' common folder; paths are hashed relative to the root
    relative_to_a = file_list_fingerprint(paths, labels, tmp_path / "a")
    assert file_list_fingerprint(paths, labels) == relative_to_a != first
    assert file_list_fingerprint(paths, labels + 1, tmp_path) != first
    assert file_list_fingerprint(paths[:1], labels[:1], tmp_path) != first
    (tmp_path / "a" / "2.png").write_bytes((tmp_path / "a" / "2.png").read_bytes() + b"\0")
    assert file_list_fingerprint(paths, labels, tmp_path) != first
    with pytest.raises(FileNotFoundError, match="gone.png"):
        file_list_fingerprint([tmp_path / "a" / "gone.png"], [0], tmp_path)
