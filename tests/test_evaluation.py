"""Evaluation data and inference: image layouts, timm-exact preprocessing, the cache, top-k accuracy."""

import json
import time

import numpy as np
import pytest
import scipy.io
import timm
import torch
from PIL import Image
from timm.data import ImageNetInfo, create_transform, resolve_data_config
from timm.models import get_pretrained_cfg
from torch import nn

from conftest import TINY_DEMO
from masterkey.config import validate_config
from masterkey.demo_data import build_demo_dataset
from masterkey.errors import UserError
from masterkey.evaluation import (
    EvalSet,
    Preprocessing,
    build_eval_cache,
    demo_eval_set,
    eval_cache_files,
    evaluate,
    file_list_fingerprint,
    find_imagenet_images,
    load_eval_cache,
    preprocessing_for_model,
    save_eval_set,
    to_model_input,
    topk_correct,
    write_demo_eval_cache,
)

WNIDS = ImageNetInfo().label_names()  # sorted: position = ImageNet-1k class index
DEFAULT = Preprocessing((3, 224, 224), 0.875, "center", "bicubic")


@pytest.fixture(autouse=True)
def few_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


def make_image(seed: int, height: int, width: int, mode: str = "RGB") -> Image.Image:
    """A natural-ish test image: smooth colour gradients plus fine noise (so resampling matters)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    channels = [np.sin(2 * np.pi * (f * x + g * y) + p) for f, g, p in rng.uniform(0.5, 4, (3, 3))]
    pixels = 127.5 * (1 + np.stack(channels, -1)) * 0.8 + rng.uniform(0, 51, (height, width, 3))
    image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    return image.convert(mode)


def write_images(folder, names, size=(60, 45)):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        make_image(i, size[1], size[0]).save(folder / name)


# --------------------------------------------------------------------------- layouts


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
        ("missing", "does not exist; set 'imagenet_val'"),
        ("file", "is not a folder"),
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


# --------------------------------------------------------------------------- preprocessing


def test_preprocessing_for_model_reads_timm_registry_fast():
    cfg = get_pretrained_cfg("convnext_tiny.fb_in1k")
    p = preprocessing_for_model("convnext_tiny.fb_in1k")
    assert p.input_size == tuple(cfg.input_size) == (3, 224, 224)
    assert p.crop_pct == cfg.crop_pct == 0.875
    assert (p.crop_mode, p.interpolation) == ("center", "bicubic")
    assert p.mean == tuple(cfg.mean) and p.std == tuple(cfg.std)
    test = preprocessing_for_model("convnext_tiny.fb_in1k", use_test_size=True)
    assert test.input_size == tuple(cfg.test_input_size) and test.crop_pct == cfg.test_crop_pct
    squash = preprocessing_for_model("convnext_large.fb_in22k_ft_in1k_384")
    data = resolve_data_config(
        pretrained_cfg=get_pretrained_cfg("convnext_large.fb_in22k_ft_in1k_384").to_dict()
    )
    assert (squash.input_size, squash.crop_pct, squash.crop_mode) == (data["input_size"], 1.0, "squash")
    names = timm.list_pretrained("convnext*")
    assert len(names) > 67
    started = time.perf_counter()
    keys = {preprocessing_for_model(name).key() for name in names}
    assert time.perf_counter() - started < 2.0
    assert 1 < len(keys) < len(names)  # checkpoints share caches
    with pytest.raises(UserError, match="close matches: convnext_tiny.fb_in1k"):
        preprocessing_for_model("convnext_tiny.fb_in1kk")
    with pytest.raises(UserError, match="no timm pretrained configuration"):
        preprocessing_for_model("demo")


def test_key_depends_on_pixel_fields_only():
    assert DEFAULT.key() == "702661be1b36"  # stable across runs and machines: caches stay valid
    clip = Preprocessing((3, 224, 224), 0.875, "center", "bicubic", (0.48, 0.46, 0.41), (0.27, 0.26, 0.28))
    assert clip.key() == DEFAULT.key()
    changed = [
        Preprocessing((3, 256, 256), 0.875),
        Preprocessing((3, 224, 192), 0.875),
        Preprocessing((3, 224, 224), 0.95),
        Preprocessing((3, 224, 224), 0.875, interpolation="bilinear"),
        Preprocessing((3, 224, 224), 0.875, crop_mode="squash"),
    ]
    assert len({DEFAULT.key(), *(p.key() for p in changed)}) == 1 + len(changed)
    border = Preprocessing((3, 224, 224), 1.0, "border")
    other_fill = Preprocessing((3, 224, 224), 1.0, "border", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert border.key() != other_fill.key()  # border pads with the mean colour
    assert Preprocessing.from_dict(json.loads(json.dumps(clip.as_dict()))) == clip


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("crop_mode", "random", "crop_mode 'random' unknown"),
        ("interpolation", "random", "interpolation 'random' unknown"),
        ("input_size", (1, 224, 224), r"must be \(3, H, W\)"),
        ("crop_pct", 0, "positive"),
    ],
)
def test_bad_preprocessing_rejected(field, value, message):
    fields = {**DEFAULT.as_dict(), field: value}
    with pytest.raises(UserError, match=message):
        Preprocessing(**fields)


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory):
    """Four images of different sizes, modes and formats in class folders."""
    root = tmp_path_factory.mktemp("images")
    (root / "n01440764").mkdir()
    (root / "n01443537").mkdir()
    make_image(1, 375, 500).save(root / "n01440764" / "landscape.JPEG", quality=90)
    make_image(2, 301, 203, "L").save(root / "n01440764" / "portrait_grey.png")
    make_image(3, 97, 130, "RGBA").save(root / "n01443537" / "small_alpha.png")
    make_image(4, 240, 240, "CMYK").save(root / "n01443537" / "square_cmyk.jpg")
    return root


@pytest.mark.parametrize(
    "preprocessing",
    [
        DEFAULT,
        Preprocessing((3, 96, 80), 0.9, "center", "bilinear", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        Preprocessing((3, 64, 64), 1.0, "squash", "bicubic"),
        Preprocessing((3, 64, 64), 0.95, "border", "bilinear"),
    ],
    ids=["center-224", "center-nonsquare", "squash", "border"],
)
def test_cached_pixels_match_timm_eval_transform(tmp_path, mixed_folder, preprocessing):
    paths, labels = find_imagenet_images(mixed_folder)
    out = build_eval_cache(paths, labels, preprocessing, tmp_path / "cache.npy", workers=1)
    eval_set = load_eval_cache(out, preprocessing)
    p = preprocessing
    timm_transform = create_transform(
        p.input_size, crop_pct=p.crop_pct, crop_mode=p.crop_mode, interpolation=p.interpolation,
        mean=p.mean, std=p.std,
    )  # fmt: skip
    for i, path in enumerate(paths):
        with Image.open(path) as image:
            expected = timm_transform(image.convert("RGB"))
        ours = to_model_input(torch.from_numpy(np.array(eval_set.images[i : i + 1])), p.mean, p.std, "cpu")
        assert ours.shape[1:] == expected.shape == (3, *p.input_size[1:])
        torch.testing.assert_close(ours[0], expected, rtol=0, atol=1e-5)


def test_center_crop_is_shorter_side_resize_then_centre_crop(tmp_path, mixed_folder):
    """The documented 'center' recipe, computed with PIL alone, gives the cached pixels exactly."""
    path = mixed_folder / "n01440764" / "landscape.JPEG"  # 500 x 375
    out = build_eval_cache([path], [0], DEFAULT, tmp_path / "c.npy", workers=1)
    cached = load_eval_cache(out).images[0].transpose(1, 2, 0)
    short = int(224 / 0.875)  # 256
    with Image.open(path) as image:
        resized = image.convert("RGB").resize((int(500 * short / 375), short), Image.Resampling.BICUBIC)
    left, top = int(round((resized.width - 224) / 2)), int(round((resized.height - 224) / 2))
    expected = np.asarray(resized)[top : top + 224, left : left + 224]
    np.testing.assert_array_equal(cached, expected)


# --------------------------------------------------------------------------- cache


def test_cache_round_trip_parallel_equals_serial(tmp_path, mixed_folder):
    paths, labels = find_imagenet_images(mixed_folder)
    small = Preprocessing((3, 48, 48), 0.875)
    serial = build_eval_cache(paths, labels, small, tmp_path / "serial.npy", workers=1, meta={"dataset": "x"})
    parallel = build_eval_cache(paths, labels, small, tmp_path / "parallel.npy", workers=2, batch_size=3)
    a, b = load_eval_cache(serial), load_eval_cache(parallel, small)
    assert isinstance(a.images, np.memmap) and not a.images.flags.writeable
    assert a.images.dtype == np.uint8 and a.images.shape == (4, 3, 48, 48)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, labels)
    assert a.mean == small.mean and a.name == "serial"
    sidecar = json.loads(eval_cache_files(serial).meta.read_text())
    assert sidecar["key"] == small.key() and sidecar["num_images"] == 4 and sidecar["dataset"] == "x"
    assert sidecar["fingerprint"] == file_list_fingerprint(paths, labels, mixed_folder)
    assert sidecar["source_root"] == str(mixed_folder)
    assert sorted(f.name for f in tmp_path.iterdir()) == sorted(
        f"{stem}{suffix}" for stem in ("serial", "parallel") for suffix in (".npy", ".labels.npy", ".json")
    )


def test_cache_rejects_stale_and_corrupt(tmp_path, mixed_folder):
    paths, labels = find_imagenet_images(mixed_folder)
    small = Preprocessing((3, 32, 32), 0.875)
    out = build_eval_cache(paths, labels, small, tmp_path / "c.npy", workers=1)
    other_mean = Preprocessing((3, 32, 32), 0.875, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert load_eval_cache(out, other_mean).mean == (0.5, 0.5, 0.5)  # same pixels, other normalisation
    stales = [Preprocessing((3, 32, 32), 0.9), Preprocessing((3, 32, 32), 0.875, interpolation="bilinear")]
    for stale in (*stales, Preprocessing((3, 40, 40), 0.875)):
        with pytest.raises(UserError, match=f"stale evaluation cache {out}.*delete"):
            load_eval_cache(out, stale)
    files = eval_cache_files(out)
    data = files.images.read_bytes()
    files.images.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="unreadable|holds"):
        load_eval_cache(out)
    files.images.write_bytes(data)
    files.meta.write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        load_eval_cache(out)
    files.labels.unlink()
    with pytest.raises(UserError, match=r"c\.labels\.npy does not exist"):
        load_eval_cache(out)
    with pytest.raises(UserError, match="must end in .npy"):
        load_eval_cache(tmp_path / "c.json")


def test_undecodable_image_leaves_nothing(tmp_path, mixed_folder):
    paths, labels = find_imagenet_images(mixed_folder)
    broken = tmp_path / "broken.JPEG"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out_dir = tmp_path / "cache"
    with pytest.raises(UserError, match=f"cannot decode {broken}"):
        build_eval_cache([*paths, broken], [*labels, 0], DEFAULT, out_dir / "c.npy", workers=1)
    assert list(out_dir.iterdir()) == []
    with pytest.raises(UserError, match="does not exist"):
        build_eval_cache([tmp_path / "gone.png"], [0], DEFAULT, out_dir / "c.npy")


# --------------------------------------------------------------------------- inference


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
    with pytest.raises(UserError, match="labels up to 7 but the model has 4 classes"):
        evaluate(model, EvalSet(pixels, np.arange(8), mean, std, "t"))
    recorder = Recorder()
    evaluate(recorder, EvalSet(pixels, labels, mean, std, "t"), batch_size=3)
    seen = torch.cat(recorder.inputs)
    assert [len(b) for b in recorder.inputs] == [3, 3, 2]
    assert seen.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(seen, x, rtol=0, atol=1e-6)


def test_eval_set_checks_its_fields():
    pixels = np.zeros((2, 3, 8, 8), dtype=np.uint8)
    with pytest.raises(UserError, match="need mean and std"):
        EvalSet(pixels, np.zeros(2), None, None, "x")
    with pytest.raises(UserError, match="take none"):
        EvalSet(pixels.astype(np.float32), np.zeros(2), (0.5,) * 3, (0.5,) * 3, "x")
    with pytest.raises(UserError, match="2 images but labels"):
        EvalSet(pixels, np.zeros(3), (0.5,) * 3, (0.5,) * 3, "x")
    with pytest.raises(UserError, match=r"\(N, 3, H, W\)"):
        EvalSet(pixels[:, :1], np.zeros(2), (0.5,) * 3, (0.5,) * 3, "x")


def test_demo_eval_set_is_the_training_validation_split(tmp_path):
    demo = validate_config({"models": ["demo"], "demo": dict(TINY_DEMO)})["demo"]
    reference = build_demo_dataset(
        demo["images"], demo["crop_size"], demo["val_fraction"], demo["val_crops_per_class"],
        demo["max_image_side"], seed=7,
    )  # fmt: skip
    eval_set = demo_eval_set(demo, seed=7)
    assert eval_set.mean is None and eval_set.std is None and not eval_set.is_uint8
    torch.testing.assert_close(eval_set.images, reference.val_images, rtol=0, atol=0)
    np.testing.assert_array_equal(eval_set.labels, reference.val_labels.numpy())
    out = write_demo_eval_cache(demo, 7, tmp_path / "demo.npy")
    cached = load_eval_cache(out)
    np.testing.assert_array_equal(cached.images, reference.val_images.numpy())
    assert cached.mean is None and cached.name == "demo"
    assert json.loads(eval_cache_files(out).meta.read_text())["seed"] == 7
    with pytest.raises(UserError, match="pre-normalised"):
        load_eval_cache(out, DEFAULT)
    resaved = save_eval_set(cached, tmp_path / "again.npy")
    np.testing.assert_array_equal(load_eval_cache(resaved).images, cached.images)
