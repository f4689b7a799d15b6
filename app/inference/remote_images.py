"""Images as a remote server receives them: re-encoded once, no larger than Llama 4 can use.

The server's image processor cuts an image into at most `max_tiles` square tiles of `tile`
pixels, so anything beyond that is bytes on the wire for nothing. Each image is shrunk so its
longest side is at most `tile · √max_tiles` (1,344 px for Scout) and it holds at most
`max_tiles · tile²` pixels, then encoded as JPEG (quality 90), or PNG when it has transparency,
and sent as a `data:` URI. Encoded images are kept in a small LRU keyed by path and mtime, so a
conversation's earlier images are not re-encoded on every turn.
"""

from __future__ import annotations

import base64
import io
import math
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

from app.inference.budget import ImageTiling
from app.inference.engine import BadInputError

if TYPE_CHECKING:
    from PIL.Image import Image as PilImage

JPEG_QUALITY = 90
#: Encoded images kept (a few MB each at most).
CACHE_SIZE = 32


def max_size(width: int, height: int, tiling: ImageTiling | None = None) -> tuple[int, int]:
    """The size an image is sent at: never upscaled, capped by side and by pixel count.

    Args:
        width: upright width in pixels.
        height: upright height in pixels.
        tiling: the model's tiling (Scout's when None).

    Returns:
        (width, height), each at least 1; e.g. (1344, 1008) for 4000×3000 with Scout's tiling.
    """
    tiling = tiling or ImageTiling()
    max_side = tiling.tile * max(1, math.isqrt(tiling.max_tiles))
    max_pixels = tiling.max_tiles * tiling.tile * tiling.tile
    scale = min(1.0, max_side / max(width, height), math.sqrt(max_pixels / (width * height)))
    if scale >= 1.0:
        return width, height
    # Floor, so rounding can never push a side or the area over its cap.
    return max(1, math.floor(width * scale)), max(1, math.floor(height * scale))


def encode_image(path: Path, tiling: ImageTiling | None = None) -> tuple[str, int, int]:
    """Re-encode an image file for the wire.

    Args:
        path: an upright image file (a stored blob).
        tiling: the model's tiling (Scout's when None).

    Returns:
        The `data:` URI, and the width and height it was encoded at.

    Raises:
        BadInputError: the file is gone or cannot be read as an image, naming it.
    """
    from PIL import Image

    try:
        with Image.open(path) as opened:
            width, height = opened.size
            target = max_size(width, height, tiling)
            if target != (width, height) and opened.format == "JPEG":
                opened.draft("RGB", target)  # decode at a reduced scale: much faster
            image = opened.convert("RGBA") if _has_alpha(opened) else opened.convert("RGB")
    except FileNotFoundError:
        raise BadInputError(f"The image {path.name} is no longer on disk.") from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise BadInputError(f"The image {path.name} cannot be read: {exc}") from None
    if image.size != target:
        image = image.resize(target, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if image.mode == "RGBA":
        image.save(buffer, format="PNG", optimize=False)
        mime = "image/png"
    else:
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
        mime = "image/jpeg"
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"data:{mime};base64,{data}", image.width, image.height


class ImagePayloads:
    """A thread-safe LRU of encoded images, keyed by (path, mtime, size).

    Args:
        tiling: the model's tiling (Scout's when None).
        capacity: how many encoded images to keep.
    """

    def __init__(self, tiling: ImageTiling | None = None, capacity: int = CACHE_SIZE) -> None:
        self._tiling = tiling
        self._capacity = capacity
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, int, int], str] = OrderedDict()
        #: How many images were actually encoded (not served from the cache), for tests.
        self.encoded = 0

    def data_uri(self, path: Path) -> str:
        """The image's `data:` URI, encoded at most once per version of the file.

        Raises:
            BadInputError: the file is gone or unreadable.
        """
        path = Path(path)
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise BadInputError(f"The image {path.name} is no longer on disk.") from None
        except OSError as exc:
            raise BadInputError(f"The image {path.name} cannot be read: {exc}") from None
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        with self._lock:
            uri = self._entries.get(key)
            if uri is not None:
                self._entries.move_to_end(key)
                return uri
        uri, _, _ = encode_image(path, self._tiling)
        with self._lock:
            self.encoded += 1
            self._entries[key] = uri
            self._entries.move_to_end(key)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)
        return uri

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _has_alpha(image: PilImage) -> bool:
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return True
    return image.mode == "P" and "transparency" in image.info
