"""Vectorised renderer: a batch of images from per-image attribute arrays, in float32 numpy.

Everything is computed on (n, H, W) grids at once; there is no per-image Python loop. The
caller passes every random number (uniforms from `data.rng`), so the renderer itself is a
pure function and an image never depends on the batch it was drawn in.

Coordinates are normalised to [-1, 1] so one world renders at any image size.
"""

from __future__ import annotations

import numpy as np

DISTRACTORS = 2
"""Textureless blobs of random hue behind the objects (scaled by `clutter`)."""
BG_SLOTS = 7 + 5 * DISTRACTORS
OBJ_SLOTS = 7


def family_shape(family: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lobes, lobe amplitude, aspect) of shape families: 8 lobe counts x 2 amplitudes x 2
    aspects x 2 amplitude offsets = 64 distinct outlines."""
    family = np.asarray(family)
    lobes = (1 + family % 8).astype(np.float32)
    amp = (0.14 + 0.2 * ((family // 8) % 2) + 0.1 * ((family // 32) % 2)).astype(np.float32)
    aspect = (1.0 + 0.55 * ((family // 16) % 2)).astype(np.float32)
    return lobes, amp, aspect


def hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB in [0, 1]; inputs broadcast, output gets a trailing axis of 3."""
    k = np.array([5.0, 3.0, 1.0], dtype=np.float32)
    n = (k + (h[..., None] % 1.0) * 6.0) % 6.0
    f = np.clip(np.minimum(n, 4.0 - n), 0.0, 1.0)
    return v[..., None] * (1.0 - s[..., None] * f)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = ((np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0)
    return c[None, None, :], c[None, :, None]  # x (1,1,W), y (1,H,1)


def render(
    family: np.ndarray,        # (n, M) int, shape family of each object slot
    variant: np.ndarray,       # (n, M) int
    texture: np.ndarray,       # (n, M) int
    colour: np.ndarray,        # (n, M) hue in colour steps (may be fractional)
    active: np.ndarray,        # (n, M) bool, slot drawn at all
    u_bg: np.ndarray,          # (n, BG_SLOTS) uniforms
    u_obj: np.ndarray,         # (n, M, OBJ_SLOTS) uniforms
    noise: np.ndarray,         # (n, 3, H, W) float32 standard normal-ish pixel noise
    *,
    size: int,
    variants: int,
    colours: int,
    clutter: float,
    noise_std: float,
    object_size: float = 0.5,
    hue_spread: np.ndarray | None = None,
) -> np.ndarray:
    """uint8 images (n, 3, size, size). `hue_spread` (n, M): per-object scale of the hue
    jitter (+-0.15 colour steps at 1; private tail hues use a finer one)."""
    n, m = family.shape
    f32 = np.float32
    x, y = _grid(size)
    u_bg = u_bg.astype(f32)
    u_obj = u_obj.astype(f32)

    # Background: a desaturated base colour plus a low-frequency colour wave (clutter).
    base = hsv_to_rgb(u_bg[:, 0], 0.1 + 0.25 * u_bg[:, 1], 0.3 + 0.5 * u_bg[:, 2])    # (n,3)
    wave_rgb = hsv_to_rgb(u_bg[:, 3], np.full(n, 0.6, f32), np.full(n, 0.8, f32))
    ang = (u_bg[:, 4] * 2 * np.pi)[:, None, None]
    freq = (1.0 + 2.5 * u_bg[:, 5])[:, None, None]
    wave = 0.5 + 0.5 * np.sin(np.pi * freq * (x * np.cos(ang) + y * np.sin(ang))
                              + 2 * np.pi * u_bg[:, 6][:, None, None])           # (n,H,W)
    img = base[:, :, None, None] + (clutter * 0.6 * wave)[:, None] * (
        wave_rgb - base)[:, :, None, None]

    # Distractor blobs: plain discs of random hue, partly transparent.
    for d in range(DISTRACTORS):
        o = 7 + 5 * d
        cx = (u_bg[:, o] * 1.6 - 0.8)[:, None, None]
        cy = (u_bg[:, o + 1] * 1.6 - 0.8)[:, None, None]
        rad = (0.08 + 0.17 * u_bg[:, o + 2])[:, None, None]
        rgb = hsv_to_rgb(u_bg[:, o + 3], np.full(n, 0.7, f32), 0.4 + 0.5 * u_bg[:, o + 4])
        dist = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
        a = clutter * 0.8 * np.clip((rad - dist) * (size / 2.0) + 0.5, 0.0, 1.0)
        img += a[:, None] * (rgb[:, :, None, None] - img)

    # Objects, painted in slot order (later slots occlude earlier ones).
    lobes, amp, aspect = family_shape(family)
    hole = np.where(variants > 1, 0.5 * variant / max(variants - 1, 1), 0.0).astype(f32)
    hole = np.where(variant == 0, -1.0, hole).astype(f32)  # variant 0 = solid
    kind = texture % 4                                       # plain, stripes, checks, rings
    tex_freq = (2.0 + 1.4 * (texture // 4)).astype(f32)
    for j in range(m):
        uo = u_obj[:, j]
        multi = active.sum(1) > 1
        scale = np.where(multi, 0.72, 1.0).astype(f32) * (object_size * (0.8 + 0.4 * uo[:, 2]))
        lim = np.maximum(1.0 - scale, 0.0)
        cx = ((uo[:, 0] * 2 - 1) * lim)[:, None, None]
        cy = ((uo[:, 1] * 2 - 1) * lim)[:, None, None]
        rot = (uo[:, 3] * 2 * np.pi)[:, None, None]
        s = scale[:, None, None]
        dx, dy = x - cx, y - cy
        cr, sr = np.cos(rot), np.sin(rot)
        u = (dx * cr + dy * sr) / s
        v = (dy * cr - dx * sr) / s * aspect[:, j, None, None]
        r = np.sqrt(u * u + v * v)
        th = np.arctan2(v, u)
        a_j, l_j = amp[:, j, None, None], lobes[:, j, None, None]
        rim = (1.0 + a_j * np.cos(l_j * th)) / (1.0 + a_j)
        sharp = (s * size / 2.0)                              # pixels per unit of u
        alpha = np.clip((rim - r) * sharp + 0.5, 0.0, 1.0)
        alpha *= np.clip((r - hole[:, j, None, None] * rim) * sharp + 0.5, 0.0, 1.0)
        alpha *= active[:, j, None, None]

        k = kind[:, j, None, None]
        fr = np.pi * tex_freq[:, j, None, None]
        phase = 2 * np.pi * uo[:, 4, None, None]
        along = np.where(k == 3, r, u)
        pat = np.sin(fr * along + phase)
        pat = pat * np.where(k == 2, np.sin(fr * v), 1.0)
        pat = np.where(k == 0, 0.0, np.clip(2.5 * pat, -1.0, 1.0))
        shade = 1.0 - 0.3 * (1.0 + pat)                       # plain = 0.7, stripes 0.4..1

        spread = 1.0 if hue_spread is None else hue_spread[:, j]
        hue = (colour[:, j] + 0.3 * spread * (uo[:, 5] - 0.5)) / colours
        rgb = hsv_to_rgb(hue, np.full(n, 0.8, f32), 0.75 + 0.25 * uo[:, 6])    # (n,3)
        obj = rgb[:, :, None, None] * shade[:, None]
        img += alpha[:, None] * (obj - img)

    img = img * 255.0 + noise_std * noise
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)
