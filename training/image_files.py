"""Image files of datasets: which names are images, and decoding their bytes. Imports no torch, so that
dataset_tool.py starts quickly; training/dataset.py reads datasets with the same rules."""

import io
import os

import numpy as np
import PIL.Image

# ----------------------------------------------------------------------------


class DatasetError(OSError):
    """A dataset that cannot be used as asked. The message is one line and names the offending file."""

    def __init__(self, message):
        # A DataLoader worker's exception is re-raised in the main process as
        # type(err)(worker traceback text); keep only the original one-line message.
        marker = f'{type(self).__name__}: '
        if '\nOriginal Traceback' in message and marker in message:
            message = message.rstrip().rsplit(marker, 1)[1]
        super().__init__(message)


class CorruptImageError(DatasetError):
    """An image file whose bytes cannot be decoded (dataset_tool.py --skip-corrupt skips such files)."""


class UnsupportedImageError(DatasetError):
    """An image that decodes, but in a pixel format that is not 8-bit grayscale or color."""

# ----------------------------------------------------------------------------


def _readable_image_extensions():
    PIL.Image.init()
    return frozenset(ext for ext, fmt in PIL.Image.registered_extensions().items() if fmt in PIL.Image.OPEN)


IMAGE_EXTENSIONS = _readable_image_extensions()  # Lower-case, with the dot: '.png', '.jpg', '.webp', ...

# Pixel formats converted to plain 8-bit grayscale or color; formats in neither table are refused.
_CONVERTED_MODES = {'1': 'L', 'CMYK': 'RGB', 'YCbCr': 'RGB', 'LAB': 'RGB', 'HSV': 'RGB', 'PA': 'RGBA'}
_KEPT_MODES = ('L', 'LA', 'RGB', 'RGBA')


def is_image_fname(fname):
    """Whether a path names an image file (by extension; hidden and macOS resource files are not)."""
    parts = fname.replace('\\', '/').split('/')
    if any(part.startswith('.') or part == '__MACOSX' for part in parts):
        return False
    return os.path.splitext(fname)[1].lower() in IMAGE_EXTENSIONS


def image_header(data, display_name):
    """((width, height), pixel format after decode_image's conversions) from an image file's header alone."""
    try:
        image = PIL.Image.open(io.BytesIO(data))
    except PIL.UnidentifiedImageError:
        raise CorruptImageError(f"cannot read image '{display_name}': not a recognised image format") from None
    except Exception as err:  # Malformed files make PIL raise almost anything.
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CorruptImageError(f"cannot read image '{display_name}': {reason}") from None
    mode = image.mode
    if mode == 'P':
        mode = 'RGBA' if 'transparency' in image.info else 'RGB'
    return image.size, _CONVERTED_MODES.get(mode, mode)


def channel_count(mode):
    """Channels of an image of PIL pixel format `mode` as decode_image returns it."""
    return {'L': 1, 'LA': 2, 'RGB': 3, 'RGBA': 4}.get(mode, 0)


def decode_image(data, display_name):
    """Image file bytes -> uint8 array [H, W] or [H, W, C]; the errors name the file in one line."""
    try:
        image = PIL.Image.open(io.BytesIO(data))
        image.load()
    except PIL.UnidentifiedImageError:
        raise CorruptImageError(f"cannot read image '{display_name}': not a recognised image format") from None
    except Exception as err:  # Malformed files make PIL raise almost anything.
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CorruptImageError(f"cannot read image '{display_name}': {reason}") from None
    if image.mode == 'P':
        image = image.convert('RGBA' if 'transparency' in image.info else 'RGB')
    elif image.mode in _CONVERTED_MODES:
        image = image.convert(_CONVERTED_MODES[image.mode])
    elif image.mode not in _KEPT_MODES:
        raise UnsupportedImageError(f"image '{display_name}' has pixel format '{image.mode}'; only 8-bit grayscale "
                                    f"and color images are supported")
    return np.asarray(image)

# ----------------------------------------------------------------------------
