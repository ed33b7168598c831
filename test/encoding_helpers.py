"""Camera image encodings built by hand for decoder tests, independent of fg_depth_core and of OpenCV's
colour conversions: ITU-R BT.601 limited-range YUV from its defining constants (Kr = 0.299, Kb = 0.114;
Y spans 16..235 and U, V 16..240), packed 4:2:2 in either byte order, and 16-bit RGB in either byte order."""

from __future__ import annotations

import numpy as np

KR, KB = 0.299, 0.114
KG = 1.0 - KR - KB
#: Packed 4:2:2 byte order of each encoding name: the position of Y0, U, Y1, V in each 4-byte group.
YUV422_ORDER = {
    "yuv422": (1, 0, 3, 2),  # U Y0 V Y1
    "uyvy": (1, 0, 3, 2),
    "yuv422_yuy2": (0, 1, 2, 3),  # Y0 U Y1 V
    "yuyv": (0, 1, 2, 3),
}


def rgb_to_yuv(rgb: np.ndarray) -> np.ndarray:
    """(H,W,3) float Y, U, V (unrounded, limited range) of (H,W,3) uint8 RGB."""
    r, g, b = np.moveaxis(rgb.astype(np.float64) / 255.0, -1, 0)
    luma = KR * r + KG * g + KB * b
    pb = (b - luma) / (2.0 * (1.0 - KB))
    pr = (r - luma) / (2.0 * (1.0 - KR))
    return np.stack([16.0 + 219.0 * luma, 128.0 + 224.0 * pb, 128.0 + 224.0 * pr], axis=-1)


def yuv_to_rgb(yuv: np.ndarray) -> np.ndarray:
    """(H,W,3) float RGB in 0..255 (clipped, unrounded) of (H,W,3) limited-range Y, U, V."""
    y, u, v = np.moveaxis(yuv.astype(np.float64), -1, 0)
    luma, pb, pr = (y - 16.0) / 219.0, (u - 128.0) / 224.0, (v - 128.0) / 224.0
    r = luma + 2.0 * (1.0 - KR) * pr
    b = luma + 2.0 * (1.0 - KB) * pb
    g = (luma - KR * r - KB * b) / KG
    return np.clip(np.stack([r, g, b], axis=-1) * 255.0, 0.0, 255.0)


def pack_yuv422(y: np.ndarray, u: np.ndarray, v: np.ndarray, encoding: str) -> np.ndarray:
    """(H, 2W) uint8 bytes of a 4:2:2 image: ``y`` (H,W) per pixel, ``u``, ``v`` (H,W/2) per pixel pair."""
    h, w = y.shape
    groups = np.empty((h, w // 2, 4), np.uint8)
    i_y0, i_u, i_y1, i_v = YUV422_ORDER[encoding]
    groups[..., i_y0], groups[..., i_y1] = y[:, 0::2], y[:, 1::2]
    groups[..., i_u], groups[..., i_v] = u, v
    return groups.reshape(h, 2 * w)


def rgb_to_yuv422(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """(H, 2W) uint8 bytes of (H,W,3) uint8 RGB (W even) as 4:2:2 YUV: Y per pixel, U and V the mean of each
    horizontal pixel pair's."""
    yuv = rgb_to_yuv(rgb)
    chroma = (yuv[:, 0::2, 1:] + yuv[:, 1::2, 1:]) / 2.0

    def byte(a):
        return np.clip(np.rint(a), 0, 255).astype(np.uint8)

    return pack_yuv422(byte(yuv[..., 0]), byte(chroma[..., 0]), byte(chroma[..., 1]), encoding)


def pack_rgb16(rgb16: np.ndarray, encoding: str, bigendian: bool) -> np.ndarray:
    """(H, W * channels * 2) uint8 bytes of (H,W,3) uint16 RGB in rgb16 / bgr16 / rgba16 / bgra16 (alpha
    0xFFFF) or of (H,W) uint16 grey in mono16, in the given byte order."""
    if encoding == "mono16":
        channels = rgb16[..., None]
    else:
        order = [2, 1, 0] if encoding.startswith("bgr") else [0, 1, 2]
        channels = rgb16[..., order]
        if encoding.endswith("a16"):
            channels = np.concatenate([channels, np.full(rgb16.shape[:2] + (1,), 0xFFFF, np.uint16)], -1)
    words = channels.astype(">u2" if bigendian else "<u2")
    return np.ascontiguousarray(words).view(np.uint8).reshape(rgb16.shape[0], -1)


def smooth_rgb(height: int, width: int) -> np.ndarray:
    """(H,W,3) uint8 colour ramps (R across, G down, B across and down; from 64 pixels wide on, no channel
    changes by more than 4 levels between horizontal neighbours): 4:2:2 chroma subsampling loses little of
    it, while a channel or byte-order mix-up shows as tens of levels."""
    u, v = np.meshgrid(np.linspace(0.0, 1.0, width), np.linspace(0.0, 1.0, height))
    return np.rint(np.stack([255.0 * u, 20.0 + 200.0 * v, 60.0 + 150.0 * (1.0 - u) * v], axis=-1)).astype(
        np.uint8
    )
