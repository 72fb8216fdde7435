"""Rendered frames and thumbnails (PS3.18 8.3.5, 9.5): one frame decoded, windowed, encoded with Pillow.

pydicom decodes only the frame asked for (``pixel_array(index=)``); the
grayscale pipeline is PS3.3 C.11: Modality LUT (rescale), then the VOI
window (the request's ``window``, else the instance's first Window
Center/Width, else its VOI LUT, else the frame's own range), MONOCHROME1
inverted. Colour arrives as RGB (pydicom converts YBR), palette colour
through its LUT.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
from PIL import Image
from pydicom.multival import MultiValue
from pydicom.pixels.processing import apply_color_lut, apply_modality_lut, apply_voi_lut
from pydicom.pixels.utils import pixel_array

from adapters.dicomweb.dicomjson import Header, read_header
from adapters.dicomweb.frames import check_numbers

#: rendered media types, the first the default (PS3.18 8.7.4)
RENDERED_TYPES = ("image/jpeg", "image/png")
WINDOW_FUNCTIONS = ("linear", "linear-exact", "sigmoid")


class RenderError(ValueError):
    """A rendering parameter that cannot be used (400)."""


@dataclass(frozen=True)
class Rendering:
    media_type: str = "image/jpeg"
    #: center, width, function
    window: tuple[float, float, str] | None = None
    #: width, height of the box the image is fitted in
    viewport: tuple[int, int] | None = None
    #: sx, sy, sw, sh of the source region shown (viewport's optional part)
    region: tuple[int, int, int, int] | None = None
    quality: int = 90


def _numbers(name: str, text: str, count: tuple[int, ...]) -> list[float]:
    wrong = RenderError(f"'{name}' takes {' or '.join(map(str, count))} comma-separated numbers (got '{text}')")
    try:
        values = [float(p.strip()) for p in text.split(",")]
    except ValueError:
        raise wrong from None
    if len(values) not in count:
        raise wrong
    return values


def rendering(params: Any, media_type: str) -> Rendering:
    """The rendering a rendered/thumbnail request's query asks for (PS3.18 8.3.5.1)."""
    window = viewport = region = None
    if "window" in params:
        parts = [p.strip() for p in params["window"].split(",")]
        function = parts[2].lower() if len(parts) == 3 else "linear"
        center, width = _numbers("window", ",".join(parts[:2]), (2,))
        if width < 1 or function not in WINDOW_FUNCTIONS:
            raise RenderError(f"'window' is center,width[,{'|'.join(WINDOW_FUNCTIONS)}] with width >= 1")
        window = (center, width, function)
    if "viewport" in params:
        values = [int(v) for v in _numbers("viewport", params["viewport"], (2, 6))]
        if values[0] < 1 or values[1] < 1:
            raise RenderError("'viewport' width and height must be at least 1")
        viewport = (values[0], values[1])
        if len(values) == 6:
            region = (values[2], values[3], values[4], values[5])
    quality = 90
    if "quality" in params:
        text = params["quality"].strip()
        if not text.isdigit() or not 1 <= int(text) <= 100:
            raise RenderError(f"'quality' is a number from 1 to 100 (got '{text}')")
        quality = int(text)
    return Rendering(media_type, window, viewport, region, quality)


def _first(value: Any) -> float:
    return float(value[0] if isinstance(value, MultiValue | list) else value)


def _window(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """PS3.3 C.11.2.1.2 (linear, linear-exact) and C.11.2.1.3.1 (sigmoid), onto 0..1."""
    if function == "sigmoid":
        return np.asarray(1.0 / (1.0 + np.exp(-4.0 * (values - center) / width)))
    if function == "linear-exact":
        return np.clip((values - center) / width + 0.5, 0.0, 1.0)
    if width <= 1:
        return (values > center - 0.5).astype(np.float64)
    return np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)


def _span(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    return np.zeros_like(values, dtype=np.float64) if high <= low else (values - low) / (high - low)


def _grayscale(frame: np.ndarray, header: Header, window: tuple[float, float, str] | None) -> np.ndarray:
    ds = header.dataset
    values = apply_modality_lut(frame, ds).astype(np.float64)
    if window is not None:
        scaled = _window(values, *window)
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        scaled = _window(values, _first(ds.WindowCenter), max(_first(ds.WindowWidth), 1.0), "linear")
    elif "VOILUTSequence" in ds:
        scaled = _span(apply_voi_lut(values, ds).astype(np.float64))
    else:
        scaled = _span(values)
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        scaled = 1.0 - scaled
    return np.asarray(np.round(scaled * 255.0), dtype=np.uint8)


def _color(frame: np.ndarray, header: Header) -> np.ndarray:
    if str(header.dataset.get("PhotometricInterpretation", "")) == "PALETTE COLOR":
        frame = apply_color_lut(frame, header.dataset)
    if frame.dtype == np.uint8:
        return frame
    return np.asarray(np.round(_span(frame.astype(np.float64)) * 255.0), dtype=np.uint8)


def render(fp: BinaryIO, number: int, how: Rendering) -> bytes:
    """Frame ``number`` (1-based) of the instance in ``fp`` as a JPEG or PNG image."""
    header = read_header(fp)
    check_numbers(header, [number])
    fp.seek(0)
    frame = pixel_array(fp, index=number - 1)
    samples = int(header.dataset.get("SamplesPerPixel", 1) or 1)
    photometric = str(header.dataset.get("PhotometricInterpretation", ""))
    if samples == 1 and photometric != "PALETTE COLOR":
        image = Image.fromarray(_grayscale(frame, header, how.window))
    else:
        image = Image.fromarray(np.ascontiguousarray(_color(frame, header)[..., :3]))
    if how.region is not None:
        sx, sy, sw, sh = how.region
        image = image.crop((sx, sy, sx + (sw or image.width - sx), sy + (sh or image.height - sy)))
    if how.viewport is not None:
        scale = min(how.viewport[0] / image.width, how.viewport[1] / image.height)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if how.media_type == "image/png":
        image.save(out, format="PNG")
    else:
        image.save(out, format="JPEG", quality=how.quality)
    return out.getvalue()
