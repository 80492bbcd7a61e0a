"""The decoded uint8 evaluation cache: timm-exact pixels, round trip, stale and corrupt caches."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from timm.data import create_transform

from conftest import make_image
from masterkey.core.errors import ConfigError, StaleFileError
from masterkey.core.rules import user_message
from masterkey.data.evalcache import EvalSet, build_eval_cache, eval_cache_files, load_eval_cache
from masterkey.data.imagenet import file_list_fingerprint, find_imagenet_images
from masterkey.data.preprocessing import Preprocessing
from masterkey.training.evaluate import to_model_input

DEFAULT = Preprocessing((3, 224, 224), 0.875, "center", "bicubic")


pytestmark = pytest.mark.usefixtures("few_threads")




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
        with pytest.raises(StaleFileError) as info:
            load_eval_cache(out, stale)
        assert info.value.path == out
        assert str(info.value).startswith(
            f"{out} was built with {small.pixel_fields()} (key {small.key()}), but "
        )
        assert f"(key {stale.key()}) is asked for" in str(info.value)
        assert f"rebuild it: `snakemake --forcerun {out}`" in user_message(info.value)
    files = eval_cache_files(out)
    data = files.images.read_bytes()
    files.images.write_bytes(data[: len(data) // 2])
    with pytest.raises(StaleFileError, match="unreadable|holds") as info:
        load_eval_cache(out)
    assert info.value.path == files.images
    files.images.write_bytes(data)
    files.meta.write_text("{not json")
    with pytest.raises(StaleFileError, match=r"is unreadable \(JSONDecodeError") as info:
        load_eval_cache(out)
    assert info.value.path == files.meta
    files.labels.unlink()
    with pytest.raises(StaleFileError, match=r"c\.labels\.npy does not exist") as info:
        load_eval_cache(out)
    assert info.value.path == files.labels
    with pytest.raises(ValueError, match="must end in .npy"):
        load_eval_cache(tmp_path / "c.json")


def test_undecodable_image_leaves_nothing(tmp_path, mixed_folder):
    paths, labels = find_imagenet_images(mixed_folder)
    broken = tmp_path / "broken.JPEG"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out_dir = tmp_path / "cache"
    with pytest.raises(ConfigError, match=f"config key imagenet_val: cannot decode {broken}"):
        build_eval_cache([*paths, broken], [*labels, 0], DEFAULT, out_dir / "c.npy", workers=1)
    assert list(out_dir.iterdir()) == []
    with pytest.raises(ConfigError, match="config key imagenet_val: image .*gone.png disappeared"):
        build_eval_cache([tmp_path / "gone.png"], [0], DEFAULT, out_dir / "c.npy")


def test_cache_without_preprocessing_is_stale(tmp_path, mixed_folder):
    """Float (pre-normalised) caches are gone: a sidecar must name its pixel preprocessing."""
    paths, labels = find_imagenet_images(mixed_folder)
    small = Preprocessing((3, 32, 32), 0.875)
    out = build_eval_cache(paths[:2], labels[:2], small, tmp_path / "c.npy", workers=1)
    files = eval_cache_files(out)
    sidecar = json.loads(files.meta.read_text())
    files.meta.write_text(json.dumps({**sidecar, "key": "0" * 12}))
    with pytest.raises(StaleFileError, match="has a key that does not match its preprocessing"):
        load_eval_cache(out)
    del sidecar["preprocessing"]
    files.meta.write_text(json.dumps(sidecar))
    with pytest.raises(StaleFileError) as info:
        load_eval_cache(out)
    assert info.value.path == files.meta and "names no preprocessing" in str(info.value)
    files.meta.write_text(json.dumps({**sidecar, "format": "other"}))
    with pytest.raises(StaleFileError, match="is not an evaluation cache sidecar"):
        load_eval_cache(out)


def test_eval_set_checks_its_fields():
    pixels = np.zeros((2, 3, 8, 8), dtype=np.uint8)
    with pytest.raises(ValueError, match="need mean and std"):
        EvalSet(pixels, np.zeros(2), None, None, "x")
    with pytest.raises(ValueError, match="take none"):
        EvalSet(pixels.astype(np.float32), np.zeros(2), (0.5,) * 3, (0.5,) * 3, "x")
    with pytest.raises(ValueError, match="2 images, labels"):
        EvalSet(pixels, np.zeros(3), (0.5,) * 3, (0.5,) * 3, "x")
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        EvalSet(pixels[:, :1], np.zeros(2), (0.5,) * 3, (0.5,) * 3, "x")
    with pytest.raises(ValueError, match="uint8 or float32"):
        EvalSet(pixels.astype(np.float64), np.zeros(2), None, None, "x")
    torch_set = EvalSet(torch.zeros(2, 3, 8, 8), torch.tensor([1, 0]), None, None, "t")
    assert torch_set.labels.dtype == np.int64 and torch_set.labels.tolist() == [1, 0] and len(torch_set) == 2
