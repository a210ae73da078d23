"""Folders of real photos and video frames: list them, check each one, decode a video.

The real-teachers cache (:mod:`ka_tf.real.assets`) holds photos and the frames of a
street video as plain JPEG folders; everything in ka_tf reads such folders with
:func:`list_photos`. Only :func:`extract_frames`, run once at fetch time, needs OpenCV
(the ``real`` extra) to decode the video.

Example:
    >>> from ka_tf.real import assets, photos
    >>> paths = photos.list_photos(assets.asset_path("opencv_photos"))  # doctest: +SKIP
"""

from __future__ import annotations

import os

from ka_tf import io_utils
from ka_tf.errors import DataError

PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png")
FRAME_PATTERN = "frame_{index:05d}.jpg"


def frame_index(filename: str) -> int:
    """The source frame index of a :data:`FRAME_PATTERN` file name (``frame_00640.jpg``)."""
    return int(os.path.basename(filename)[len("frame_") : -len(".jpg")])


JPEG_QUALITY = 95
_FIX = (
    "remove or replace it (in the real-teachers cache: delete it and re-run `make real-teachers`)"
)


def check_photo(path: str) -> tuple[int, int]:
    """Decodes ``path`` fully with PIL.

    Returns:
        The image's (width, height).

    Raises:
        DataError: the file is missing, not an image, or truncated; the message names it.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            return image.size
    except FileNotFoundError as error:
        raise DataError(f"photo {path} does not exist; {_FIX}.") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        cause = " ".join(str(error).split()) or type(error).__name__
        raise DataError(f"{path} is not a readable image ({cause}); {_FIX}.") from error


def list_photos(folder: str, check: bool = True) -> list[str]:
    """The photos (``.jpg``, ``.jpeg``, ``.png``) in ``folder``, sorted by name.

    Files with other extensions are left out.

    Args:
        folder: The folder.
        check: Decode each photo (:func:`check_photo`) so that a bad one is named now
            rather than in the middle of a run.

    Raises:
        DataError: the folder is missing or has no photo, or a photo is not an image.
    """
    if not os.path.isdir(folder):
        raise DataError(
            f"photo folder {folder} does not exist; for the real photos run "
            f"`make real-teachers` (or python tools/fetch_real.py)."
        )
    paths = [
        os.path.join(folder, name)
        for name in sorted(os.listdir(folder))
        if name.lower().endswith(PHOTO_EXTENSIONS) and not name.startswith(".")
    ]
    if not paths:
        raise DataError(
            f"photo folder {folder} has no {'/'.join(PHOTO_EXTENSIONS)} file; expected photos."
        )
    if check:
        for path in paths:
            check_photo(path)
    return paths


def extract_frames(video: str, folder: str, step: int = 1, quality: int = JPEG_QUALITY) -> int:
    """Decodes every ``step``-th frame of ``video`` into ``folder`` as JPEG files.

    Frame ``i`` of the video becomes ``frame_<i, 5 digits>.jpg``, so the names keep
    the frames' times. Each file is written atomically.

    Args:
        video: The video file (anything OpenCV's FFmpeg back end decodes).
        folder: Where the frames go (created if missing).
        step: Keep frames 0, step, 2 * step, ...
        quality: JPEG quality (0-100).

    Returns:
        The number of frames written.

    Raises:
        DataError: no frame could be decoded from ``video`` (it is named), or a frame
            could not be encoded.
        MissingExtraError: OpenCV (the ``real`` extra) is not installed.
    """
    from ka_tf import extras

    cv2 = extras.require("cv2", "decoding a video into frames")
    if step < 1:
        raise DataError(f"frame step must be 1 or more. Received: step={step}.")
    capture = cv2.VideoCapture(video)
    written = 0
    index = 0
    try:
        while capture.isOpened():
            ok, frame = capture.read()
            if not ok:
                break
            if index % step == 0:
                encoded, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
                if not encoded:
                    raise DataError(f"cannot encode frame {index} of {video} as JPEG.")
                path = os.path.join(folder, FRAME_PATTERN.format(index=index))
                io_utils.atomic_write_bytes(path, data.tobytes())
                written += 1
            index += 1
    finally:
        capture.release()
    if written == 0:
        raise DataError(
            f"cannot decode video {video}: OpenCV {cv2.__version__} read no frame from it; "
            f"check that it is a complete video file (delete it and fetch it again) and that "
            f"opencv-python-headless comes from ka_tf's 'real' extra."
        )
    return written
