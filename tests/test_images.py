import numpy as np
import pytest

from badfiles import corpus
from vistarank.udfs.images import ImageRejected, decode_rgb, hamming_hex, local_path, phash_hex, read_bytes

LIMITS = dict(max_pixels=40_000_000, formats=["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"], min_side=32)


@pytest.mark.parametrize("name", sorted(n for n, v in corpus().items() if v[1] and v[1] != "unsupported_extension"))
def test_bad_files_are_rejected_with_their_reason(name):
    data, reason, _ = corpus()[name]
    with pytest.raises(ImageRejected) as e:
        decode_rgb(data, **LIMITS)
    assert e.value.reason == reason


@pytest.mark.parametrize("name", sorted(n for n, v in corpus().items() if v[1] is None))
def test_awkward_files_are_normalised_to_rgb(name):
    data, _, expect = corpus()[name]
    dec = decode_rgb(data, **LIMITS)
    assert dec.image.mode == "RGB"
    assert dec.image.size == expect["size"]
    if "source_mode" in expect:
        assert dec.source_mode == expect["source_mode"]
    if "pixel" in expect:
        assert dec.image.getpixel((5, 5)) == expect["pixel"]
    if name == "sixteen_bit.png":  # 16-bit scaled to 8-bit, not clipped to white
        arr = np.asarray(dec.image)
        assert 0 < arr.mean() < 255 and arr.max() <= 255 and len(np.unique(arr)) > 10
    if name == "animated.gif":
        assert dec.frames == 3


def test_too_large_file_is_rejected_without_reading(tmp_path):
    p = tmp_path / "big.jpg"
    p.write_bytes(b"x" * 2000)
    with pytest.raises(ImageRejected) as e:
        read_bytes(str(p), max_bytes=1000)
    assert e.value.reason == "too_large"


def test_unsupported_format_is_rejected():
    data, _, _ = corpus()["animated.gif"]
    with pytest.raises(ImageRejected) as e:
        decode_rgb(data, max_pixels=10**8, formats=["JPEG"])
    assert e.value.reason == "unsupported_format"


def test_uri_mapping():
    assert local_path("file:/a/b.jpg") == "/a/b.jpg"
    assert local_path("file:///a/b.jpg") == "/a/b.jpg"
    assert local_path("dbfs:/x/y.jpg") == "/dbfs/x/y.jpg"
    assert local_path("/a/b.jpg") == "/a/b.jpg"
    assert local_path("s3a://bucket/k.jpg") is None


def test_phash_tolerates_reencoding_but_separates_scenes():
    from vistarank.udfs.render import encode_jpeg, render_scene

    img = render_scene("beach", np.random.default_rng(1), 240, 160)
    other = render_scene("beach", np.random.default_rng(2), 240, 160)
    h = lambda b: phash_hex(decode_rgb(b, max_pixels=10**8).image)  # noqa: E731
    a, b = h(encode_jpeg(img, 90)), h(encode_jpeg(img, 60))
    c = h(encode_jpeg(img.resize((170, 113)), 85))
    d = h(encode_jpeg(other, 90))
    assert len(a) == 64  # 256 bits
    assert hamming_hex(a, b) <= 10 and hamming_hex(a, c) <= 10
    assert hamming_hex(a, d) > 10
