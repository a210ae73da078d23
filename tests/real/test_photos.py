"""Photo folders and video frames: listed, checked, decoded; bad files named."""

import os
import re

import numpy as np
import pytest
from PIL import Image

from ka_tf import extras
from ka_tf.errors import DataError
from ka_tf.real import photos


def _photo(path, size=(32, 24)) -> str:
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return str(path)


def test_list_photos_sorts_checks_and_skips_other_files(tmp_path):
    _photo(tmp_path / "b.png")
    _photo(tmp_path / "a.jpg", size=(40, 30))
    (tmp_path / "README.txt").write_text("not a photo")
    assert photos.list_photos(str(tmp_path)) == [
        str(tmp_path / "a.jpg"),
        str(tmp_path / "b.png"),
    ]
    assert photos.check_photo(str(tmp_path / "a.jpg")) == (40, 30)


@pytest.mark.parametrize(
    "content",
    [b"this is text, not a JPEG", b""],
    ids=["text", "empty"],
)
def test_not_an_image_is_named_on_one_line(tmp_path, content):
    _photo(tmp_path / "good.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(content)
    with pytest.raises(DataError) as raised:
        photos.list_photos(str(tmp_path))
    message = str(raised.value)
    assert message.startswith(f"{bad} is not a readable image")
    assert "\n" not in message and "make real-teachers" in message


def test_truncated_jpeg_is_named(tmp_path):
    path = _photo(tmp_path / "cut.jpg", size=(256, 256))
    with open(path, "rb") as handle:
        data = handle.read()
    with open(path, "wb") as handle:
        handle.write(data[: len(data) // 2])
    with pytest.raises(DataError, match=re.escape(f"{path} is not a readable image")):
        photos.check_photo(path)


def test_missing_and_empty_folders_are_named(tmp_path):
    with pytest.raises(
        DataError, match=re.escape(f"photo folder {tmp_path / 'absent'} does not exist")
    ):
        photos.list_photos(str(tmp_path / "absent"))
    with pytest.raises(DataError, match=re.escape("has no .jpg/.jpeg/.png file")):
        photos.list_photos(str(tmp_path))


def test_extract_frames_keeps_every_kth_frame_named_by_its_index(tmp_path):
    cv2 = pytest.importorskip("cv2")
    video = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for index in range(10):
        writer.write(np.full((48, 64, 3), index * 25, dtype=np.uint8))
    writer.release()

    count = photos.extract_frames(video, str(tmp_path / "frames"), step=4)

    assert count == 3
    names = sorted(os.listdir(tmp_path / "frames"))
    assert names == ["frame_00000.jpg", "frame_00004.jpg", "frame_00008.jpg"]
    frames = photos.list_photos(str(tmp_path / "frames"))
    means = [np.asarray(Image.open(path)).mean() for path in frames]
    np.testing.assert_allclose(means, [0, 100, 200], atol=3)


def test_undecodable_video_is_named(tmp_path):
    pytest.importorskip("cv2")
    video = tmp_path / "broken.avi"
    video.write_bytes(b"RIFF" + os.urandom(2000))
    with pytest.raises(DataError) as raised:
        photos.extract_frames(str(video), str(tmp_path / "frames"))
    message = str(raised.value)
    assert message.startswith(f"cannot decode video {video}: OpenCV")
    assert "\n" not in message
    assert not (tmp_path / "frames").exists()


def test_opencv_comes_with_the_real_extra():
    assert extras.EXTRA_OF_MODULE["cv2"] == "real"
    assert "ka_tf[real]" in extras.install_hint("real")
