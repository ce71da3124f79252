"""Pictures for a model: whatever a notebook holds, encoded once as the image chunk a model reads.

`picture(value, name)` takes

- a file path (``str`` or `pathlib.Path`) or an http(s) URL (sent as the URL: the
  server fetches it, nothing is downloaded here);
- a matplotlib Figure or Axes (its figure), or the ``matplotlib.pyplot`` module itself,
  meaning its current figure (Jupyter closes a figure once it is shown, so in a
  notebook keep it: ``fig, ax = plt.subplots()`` or ``fig = plt.gcf()``);
- a PIL image, a NumPy array (``(h, w)``, ``(h, w, 3)`` or ``(h, w, 4)``; floats are
  read as 0 to 1), PNG/JPEG (or any format Pillow reads) bytes, or an IPython
  ``Image``;

and returns a `Picture`: the ``image_url`` chunk, its size, format and tokens, and a
thumbnail. Pictures are downscaled to what the model uses, a longest side of
`tokens.IMAGE_MAX_SIDE` (1,024 px), so no token pays for pixels the model would drop.
Plots (a figure, a picture of few colours, anything with transparency) are PNG, which
keeps lines and text sharp; photographs (a JPEG, a picture of many colours) are JPEG
at quality `JPEG_QUALITY`. A PNG or JPEG that already fits is sent as it is, byte for
byte. The tokens are `tokens.image_tokens` of the data URL: the rule the offline server
counts with (16-pixel patches), so the estimate is its usage exactly.

Thumbnails are small pictures made here from those bytes (at most `THUMB_HEIGHT` px
high): `sheet` lays a cell's side by side as one PNG, shown above the answer as an
``image/png`` output, so no HTML is built from any of it.
"""

from __future__ import annotations

import base64
import io
import os
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..money.tokens import DEFAULT_IMAGE_TOKENS, IMAGE_MAX_SIDE, image_tokens

JPEG_QUALITY = 85
THUMB_HEIGHT = 96
THUMB_WIDTH = 192
SHEET_GAP = 8
PLOT_COLOURS = 256  # a picture with at most this many colours is a plot, diagram or screenshot
KINDS = ("a file path, an http(s) URL, a matplotlib Figure or Axes, a PIL image, a NumPy array, "
         "PNG/JPEG bytes or an IPython Image")


@dataclass
class Picture:
    """One picture as sent: its chunk's URL (a data URL, or an http(s) URL sent as it is)."""

    name: str
    url: str
    size: tuple[int, int] | None = None  # None for a URL: not fetched here
    format: str | None = None  # PNG | JPEG
    thumbnail: Any = None  # a small PIL image, None for a URL

    @property
    def tokens(self) -> int:
        """Tokens the picture takes (a URL's picture is counted as a typical one)."""
        return image_tokens(self.url)

    def chunk(self) -> dict:
        return {"type": "image_url", "image_url": self.url}

    def describe(self) -> str:
        """"fig: 640×480 PNG, 1,230 tokens" (or the URL, which is not fetched here)."""
        if self.size is None:
            return (f"{self.name} (a URL, sent as it is; counted as a typical picture, "
                    f"{DEFAULT_IMAGE_TOKENS:,} tokens)")
        width, height = self.size
        return f"{self.name}: {width}×{height} {self.format}, {self.tokens:,} tokens"


def picture(value: Any, name: str) -> Picture:
    """The picture `value` holds (see the module's doc); `ConfigError` saying why not."""
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        if isinstance(value, str) and text.lower().startswith(("http://", "https://")):
            return Picture(name, text)
        return _from_file(Path(text).expanduser(), name)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _from_bytes(bytes(value), name)
    image = _as_image(value, name)
    if image is not None:
        return image
    raise ConfigError(f"{name} holds a {type(value).__name__}, not a picture; give {KINDS}")


def _from_file(path: Path, name: str) -> Picture:
    if not path.is_file():
        raise ConfigError(f"{name}: no file {str(path)!r} (and it is no http(s) URL or name in "
                          f"the notebook); give {KINDS}")
    return _from_bytes(path.read_bytes(), name)


def _from_bytes(data: bytes, name: str) -> Picture:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, size = img.format, img.size
            img.load()
            if fmt in ("PNG", "JPEG") and max(size) <= IMAGE_MAX_SIDE:
                return _picture(name, data, fmt, img)  # sent byte for byte
            return encode(img, name, photo=fmt == "JPEG" or None)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ConfigError(f"{name} is not a picture Pillow can read ({exc}); give PNG or JPEG "
                          "bytes, or a file of a picture format") from None


def _as_image(value: Any, name: str) -> Picture | None:
    """A figure, an axes, pyplot, a PIL image, an array or an IPython Image; None otherwise."""
    from IPython.display import Image as IPythonImage
    from PIL import Image

    if isinstance(value, types.ModuleType) and value.__name__ == "matplotlib.pyplot":
        if not value.get_fignums():
            raise ConfigError(
                f"{name}: matplotlib has no open figure (Jupyter closes a figure once it is "
                "shown); keep it with fig = plt.gcf() or fig, ax = plt.subplots() in the "
                "plotting cell and pass --image fig")
        return figure(value.gcf(), name)
    if hasattr(value, "savefig") and hasattr(value, "get_size_inches"):
        return figure(value, name)
    if hasattr(value, "get_figure") and hasattr(value, "get_xlim"):  # an Axes
        root = value.figure
        return figure(getattr(root, "figure", None) or root, name)  # a subfigure's own figure
    if isinstance(value, Image.Image):
        return encode(value, name)
    if isinstance(value, IPythonImage):
        if value.data:
            return _from_bytes(bytes(value.data), name)
        if value.url:
            return picture(value.url, name)
        raise ConfigError(f"{name} is an IPython Image with neither data nor a URL")
    if type(value).__module__ == "numpy" and hasattr(value, "shape"):
        return encode(_array_image(value, name), name)
    return None


def figure(fig, name: str) -> Picture:
    """A matplotlib figure drawn as PNG at its own dpi, or less when it would pass 1,024 px."""
    width_in, height_in = fig.get_size_inches()
    dpi = min(float(fig.dpi), IMAGE_MAX_SIDE / max(width_in, height_in, 1e-6))
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=dpi, facecolor="white")
    from PIL import Image

    with Image.open(io.BytesIO(out.getvalue())) as img:
        img.load()
        return encode(img, name, photo=False)


def _array_image(array, name: str):
    import numpy as np
    from PIL import Image

    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ConfigError(f"{name} is a NumPy array of shape {array.shape}; a picture is "
                          "(height, width), (height, width, 3) or (height, width, 4)")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        array = (np.clip(np.nan_to_num(array), 0.0, 1.0) * 255).round().astype(np.uint8)
    elif array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(array))


def encode(img, name: str, photo: bool | None = None) -> Picture:
    """`img` downscaled to at most 1,024 px and encoded once: PNG for plots, JPEG for photos
    (`photo` None: decided by its colours and transparency)."""
    from PIL import Image

    if img.mode not in ("RGB", "RGBA", "L", "LA"):
        img = img.convert("RGBA" if "transparency" in img.info or img.mode == "P" else "RGB")
    if max(img.size) > IMAGE_MAX_SIDE:
        scale = IMAGE_MAX_SIDE / max(img.size)
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(size, Image.Resampling.LANCZOS)
    if photo is None:
        photo = not _has_alpha(img) and img.getcolors(PLOT_COLOURS) is None
    out = io.BytesIO()
    if photo:
        img = _flatten(img)
        img.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    else:
        img.save(out, "PNG", optimize=True)
    return _picture(name, out.getvalue(), "JPEG" if photo else "PNG", img)


def _has_alpha(img) -> bool:
    return img.mode in ("RGBA", "LA") and img.getchannel("A").getextrema()[0] < 255


def _flatten(img):
    """The picture on white, as RGB (or L): what JPEG can hold."""
    from PIL import Image

    if img.mode in ("RGB", "L"):
        return img
    base = Image.new("RGB", img.size, "white")
    base.paste(img.convert("RGBA"), mask=img.convert("RGBA").getchannel("A"))
    return base


def _picture(name: str, data: bytes, fmt: str, img) -> Picture:
    mime = "image/png" if fmt == "PNG" else "image/jpeg"
    url = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    thumb = img.copy()
    thumb.thumbnail((THUMB_WIDTH, THUMB_HEIGHT))
    return Picture(name, url, img.size, fmt, thumb)


def sheet(pictures: list[Picture]) -> bytes | None:
    """The thumbnails of `pictures` side by side on white, as PNG; None when none has one."""
    from PIL import Image

    thumbs = [p.thumbnail for p in pictures if p.thumbnail is not None]
    if not thumbs:
        return None
    width = sum(t.width for t in thumbs) + SHEET_GAP * (len(thumbs) - 1)
    height = max(t.height for t in thumbs)
    canvas = Image.new("RGB", (width, height), "white")
    x = 0
    for thumb in thumbs:
        canvas.paste(_flatten(thumb.convert("RGBA")), (x, height - thumb.height))
        x += thumb.width + SHEET_GAP
    out = io.BytesIO()
    canvas.save(out, "PNG", optimize=True)
    return out.getvalue()
