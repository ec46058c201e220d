"""Synthetic brain-like and knee-like magnitude MRI volumes.

The paper's question (can a reconstruction network trained on brain + knee
"forget" knee?) only makes sense if the two anatomies form genuinely different
domains, so these phantoms are built to differ the way real scans do: the brain
is a round head of smooth nested rings (scalp, dark skull, bright CSF) around a
folded grey-matter cortex, dim white matter and bright ventricles, with almost no
fine texture (axial T2 contrast); the knee is an elongated limb with blocky bones
separated by a thin joint space, lattice-like trabecular marrow, bright cartilage
and fat, and muscle with strongly oriented fibre texture (sagittal PD contrast).
Geometry lives in normalised coordinates [-1, 1] and is driven by a slice
coordinate t, and textures are 3-D-smooth noise, so any size / slice count works
and neighbouring slices change gradually. Everything derives from
``np.random.default_rng(seed)``, so a volume is a pure function of its arguments.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["brain_volume", "knee_volume"]

_FINAL_BLUR_PX = 0.6  # light blur so edges are not pixel-sharp (limits aliasing)
_SLICE_SIGMA = 1.2  # texture correlation length across slices, in slices
_TRABECULAR_MIN_PX = 3.0  # finest trabecular lattice drawn, in pixels


# ----------------------------------------------------------------------------
# shared helpers
# ----------------------------------------------------------------------------
def _f32(a) -> np.ndarray:
    """Per-structure parameter arrays in float32, so voxel maths never upcasts."""
    return np.asarray(a, dtype=np.float32)


def _check_args(num_slices: int, size: int) -> None:
    """Fail early on sizes the geometry was not designed for."""
    if int(num_slices) < 1:
        raise ValueError(f"num_slices must be >= 1, got {num_slices}")
    if int(size) < 16:
        raise ValueError(f"size must be >= 16, got {size}")


def _grid(num_slices: int, size: int):
    """Slice coordinate t [S,1,1] and in-plane x (columns), y (rows) [1,n,n] in [-1, 1]."""
    t = np.linspace(-1.0, 1.0, num_slices) if num_slices > 1 else np.zeros(1)
    c = (np.arange(size, dtype=np.float32) + 0.5) * (2.0 / size) - 1.0
    return (t.astype(np.float32)[:, None, None], c[None, None, :], c[None, :, None])


def _rotate(x, y, angle: float, x0: float = 0.0, y0: float = 0.0):
    """Coordinates in a frame shifted to (x0, y0) and rotated by `angle` (radians)."""
    ca, sa = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    xs, ys = x - x0, y - y0
    return ca * xs + sa * ys, -sa * xs + ca * ys


def _soft(d, px: float):
    """Anti-aliased indicator of {d < 0}; d is a signed distance in normalised units."""
    return np.clip(0.5 - d / np.float32(px), 0.0, 1.0)


def _paint(img, mask, value):
    """Painter's algorithm: blend `value` over `img` with soft coverage `mask`."""
    img *= 1.0 - mask
    img += mask * value
    return img


def _ellipse_sdf(x, y, a: float, b: float):
    """Approximate signed distance to an axis-aligned ellipse (exact for circles)."""
    rho = np.sqrt((x / a) ** 2 + (y / b) ** 2)
    return (rho - 1.0) * np.minimum(a, b)


def _box_sdf(x, y, hx, hy, r: float):
    """Exact signed distance to a rectangle of half-sizes (hx, hy) with corner radius r."""
    qx = np.abs(x) - hx + r
    qy = np.abs(y) - hy + r
    outside = np.sqrt(np.maximum(qx, 0.0) ** 2 + np.maximum(qy, 0.0) ** 2)
    return outside + np.minimum(np.maximum(qx, qy), 0.0) - r


def _smooth_union(d1, d2, k: float):
    """Polynomial smooth-min of two SDFs: unions with a fillet of size ~k (bone flares)."""
    h = np.clip(0.5 + 0.5 * (d2 - d1) / k, 0.0, 1.0)
    return d2 * (1.0 - h) + d1 * h - k * h * (1.0 - h)


def _freqs(size: int):
    """Frequency grids (cycles / pixel) matching np.fft.rfft2 on a size x size image."""
    fy = np.fft.fftfreq(size).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(size).astype(np.float32)[None, :]
    return fx, fy


def _filtered_noise(rng, num_slices: int, size: int, transfer) -> np.ndarray:
    """White noise smoothed across slices, shaped in-plane by `transfer` (FFT filter).

    Returns a zero-mean, unit-std float32 field [S, n, n]; smoothing along the slice
    axis keeps neighbouring slices similar but not identical.
    """
    noise = rng.standard_normal((num_slices, size, size), dtype=np.float32)
    if num_slices > 1:
        noise = ndimage.gaussian_filter1d(noise, _SLICE_SIGMA, axis=0, mode="reflect")
    field = np.fft.irfft2(np.fft.rfft2(noise) * transfer, s=(size, size))
    field = field.astype(np.float32)
    field -= field.mean()
    field /= field.std() + np.float32(1e-8)
    return field


def _gauss_tf(fx, fy, sigma_along: float, sigma_across: float, angle: float):
    """Anisotropic gaussian transfer function; texture is elongated along `angle`."""
    ca, sa = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    f_along = fx * ca + fy * sa
    f_across = -fx * sa + fy * ca
    return np.exp(-2.0 * np.pi**2 * ((sigma_along * f_along) ** 2 + (sigma_across * f_across) ** 2))


def _smooth_field(rng, t, x, y, n_comp: int, max_freq: float):
    """Sum of a few random low-frequency cosines in (x, y, t): bias fields, slow warps.

    Each plane wave factorises into 1-D complex exponentials, so the sum over the
    volume is a small matrix product per slice instead of n_comp full-volume cosines.
    """
    kx, ky = rng.uniform(-max_freq, max_freq, (2, n_comp))
    kt = rng.uniform(-0.5, 0.5, n_comp) * max_freq
    phase = rng.uniform(0, 2 * np.pi, n_comp)
    ex = np.exp(1j * np.pi * np.outer(kx, x.ravel()))  # [K, n]
    ey = np.exp(1j * np.pi * np.outer(ky, y.ravel()))  # [K, n]
    et = np.exp(1j * (np.pi * np.outer(kt, t.ravel()) + phase[:, None]))  # [K, S]
    out = np.einsum("ks,ky,kx->syx", et, ey, ex, optimize=True).real.astype(np.float32)
    out *= np.float32(1.0 / np.sqrt(n_comp / 2.0))
    return out


def _finish(img, support_soft, support) -> tuple[np.ndarray, np.ndarray]:
    """Blur lightly, zero the background exactly, and normalise the volume to max 1."""
    img = np.clip(img, 0.0, None) * support_soft
    img = ndimage.gaussian_filter(img, (0, _FINAL_BLUR_PX, _FINAL_BLUR_PX), mode="constant")
    img = np.where(support, img, np.float32(0)).astype(np.float32)
    img /= img.max()
    return img, support


# ----------------------------------------------------------------------------
# brain
# ----------------------------------------------------------------------------
def _brain_params(rng) -> dict:
    """Per-volume anatomy and contrast of the head (drawn once per seed)."""
    return dict(
        radius=rng.uniform(0.80, 0.90),
        aspect=rng.uniform(0.80, 0.90),  # width / height (head longer front-to-back)
        angle=rng.uniform(-0.15, 0.15),
        x0=rng.uniform(-0.04, 0.04),
        y0=rng.uniform(-0.04, 0.04),
        scalp=rng.uniform(0.050, 0.070),
        skull=rng.uniform(0.045, 0.065),
        csf_rim=rng.uniform(0.010, 0.020),
        gm_thick=rng.uniform(0.024, 0.032),
        sulc_spacing=rng.uniform(0.085, 0.11),  # gyral width
        sulc_depth=rng.uniform(0.10, 0.15),
        cleft_w=rng.uniform(0.005, 0.009),  # half-width of the CSF in a sulcus
        vent_size=rng.uniform(0.75, 1.25),
        vent_t=rng.uniform(-0.6, -0.2),
        v_csf=rng.uniform(0.92, 1.0),
        v_gm=rng.uniform(0.55, 0.65),
        v_wm=rng.uniform(0.28, 0.36),
        v_scalp=rng.uniform(0.45, 0.65),
        v_skull=rng.uniform(0.02, 0.07),
        v_deep=rng.uniform(0.40, 0.46),
        bias=rng.uniform(0.08, 0.18),
        v_fat=rng.uniform(0.85, 1.0),  # subcutaneous scalp fat: bright on T2 FSE
    )


def _sulci(rng, spacing: float, r_mean: float) -> dict:
    """Per-sulcus parameters: jittered, regularly spaced angles, so sulci cover the
    whole cortex without gaps; each has its own depth, tilt and slow slice drift."""
    n = max(8, int(round(2 * np.pi * r_mean / spacing)))
    return dict(
        n=n,
        jitter=_f32(rng.uniform(-0.3, 0.3, n)),
        depth=_f32(rng.uniform(0.35, 1.0, n)),
        tilt=_f32(rng.uniform(-0.4, 0.4, n)),  # sideways lean at full depth, in spacings
        bend=_f32(rng.uniform(0.1, 0.3, n) * rng.choice([-1.0, 1.0], n)),  # curvature of the cleft
        bend_freq=_f32(rng.uniform(1.0, 2.5, n)),
        drift=_f32(rng.uniform(-0.35, 0.35, n)),  # fraction of the spacing over the volume
        wobble=_f32(rng.uniform(0, 2 * np.pi, n)),
    )


def _cortex_sdfs(p, sul, phi, r, depth, t):
    """Signed distances of the sulcal CSF clefts and of the white matter.

    `depth` is the distance below the brain surface and r the distance to the head
    centre. Sulci are curved radial clefts at angles phi_k (tilting with depth,
    drifting with t); grey matter of thickness `gm_thick` lines the surface and every
    cleft, white matter fills the rest, so each gyrus gets a finger-like white core.
    Only the cortical ring is evaluated (the expensive part), the rest is closed form.
    """
    n = sul["n"]
    dphi = np.float32(2 * np.pi / n)
    dmax = np.float32(p["sulc_depth"])
    cw, gm = np.float32(p["cleft_w"]), np.float32(p["gm_thick"])
    shape = depth.shape
    d_cleft = np.ones(shape, dtype=np.float32)
    d_wm = (gm - depth).astype(np.float32)
    ring = (depth > -0.02) & (depth < 1.1 * dmax + 2.5 * gm)
    dep = depth[ring]
    ph = np.broadcast_to(phi, shape)[ring]
    rr = np.broadcast_to(r, shape)[ring]
    tt = np.broadcast_to(t, shape)[ring]
    frac = np.clip(dep / dmax, 0.0, 1.5)
    base = np.floor((ph + np.pi) / dphi).astype(np.int64)
    cleft = lined = None
    for off in (-2, -1, 0, 1, 2):
        k = (base + off) % n
        curve = np.sin(np.float32(np.pi) * sul["bend_freq"][k] * frac + sul["wobble"][k])
        shift = sul["tilt"][k] * frac + sul["bend"][k] * curve + sul["drift"][k] * tt
        centre = (k + 0.5 + sul["jitter"][k] + shift) * dphi - np.float32(np.pi)
        wrapped = (ph - centre + np.float32(np.pi)) % np.float32(2 * np.pi) - np.float32(np.pi)
        dist = np.abs(wrapped) * rr  # arc length to the sulcus line
        dk = dmax * sul["depth"][k] * (0.8 + 0.2 * np.cos(2.0 * tt + sul["wobble"][k]))
        # capsule distance: clefts have rounded fundi; cortex thicker at the crowns
        seg = np.sqrt(dist**2 + np.maximum(dep - dk, 0.0) ** 2)
        c = seg - cw
        ln = seg - cw - gm * (1.0 + 0.7 * np.clip(1.0 - dep / dk, 0.0, 1.0))
        cleft = c if cleft is None else np.minimum(cleft, c)
        lined = ln if lined is None else np.minimum(lined, ln)
    d_cleft[ring] = cleft
    d_wm[ring] = np.maximum(gm - dep, -lined)
    return d_cleft, d_wm


def _ventricles_sdf(p, u, v, t):
    """Two crescents "( )" near the centre (lateral ventricles), largest in mid slices."""
    grow = np.clip(1.0 - ((t - p["vent_t"]) / 0.75) ** 2, 0.0, 1.0)
    s = np.float32(p["vent_size"]) * np.sqrt(grow) + np.float32(1e-3)
    vy = v + np.float32(0.03)
    along = np.clip(vy / (0.27 * s), -1.0, 1.0)  # -1 frontal horn ... +1 atrium
    d = None
    for side in (-1.0, 1.0):
        # ")(": bodies hug the midline (septum), frontal horns and atria diverge
        centre = (0.05 + 0.035 * along + 0.07 * along**2) * s
        half_w = (0.038 + 0.01 * along + 0.022 * along**2) * s
        di = _ellipse_sdf(side * u - centre, vy, half_w, 0.27 * s)
        d = di if d is None else np.minimum(d, di)
    return d


def brain_volume(seed: int, num_slices: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (image, support): image float32 [num_slices, size, size], values in [0, 1]
    with max 1 per volume; support bool [num_slices, size, size], True inside the head
    (skull included). Axial T2-like contrast: CSF brightest, GM > WM, dark skull."""
    _check_args(num_slices, size)
    rng = np.random.default_rng(seed)
    p = _brain_params(rng)
    px = 2.0 / size
    t, x, y = _grid(num_slices, size)
    u, v = _rotate(x, y, p["angle"], p["x0"], p["y0"])

    # the slab runs from the ventricles (t = -1) up towards the vertex: head shrinks
    r_t = np.float32(p["radius"]) * np.sqrt(1.0 - 0.3 * ((t + 1.0) / 2.0) ** 2)
    a, b = r_t * np.float32(p["aspect"]), r_t
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    dist = (rho - 1.0) * a  # ~ distance to the scalp surface, normalised units
    warp = 0.012 * _smooth_field(rng, t, x, y, 8, 6.0)  # break exact polar symmetry
    phi = np.arctan2(v / b, u / a)

    img = np.zeros((num_slices, size, size), dtype=np.float32)
    head = _soft(dist, px)
    _paint(img, head, p["v_scalp"])
    # under a thin skin layer the scalp is mostly fat, as bright as CSF on T2 FSE: the body
    # outline's bright fat band is something brain and knee images share
    _paint(img, _soft(dist + np.float32(0.25 * p["scalp"]), px), p["v_fat"])
    d_skull = dist + np.float32(p["scalp"])
    _paint(img, _soft(d_skull, px), p["v_skull"])
    d_csf = d_skull + np.float32(p["skull"])
    _paint(img, _soft(d_csf, px), p["v_csf"])

    # cortex: the grey-matter surface dips into narrow CSF-filled sulci; white matter
    # sits one cortical thickness deeper and retreats more widely around each sulcus
    d_brain = d_csf + np.float32(p["csf_rim"]) + warp
    _paint(img, _soft(d_brain, px), p["v_gm"])
    sul = _sulci(rng, p["sulc_spacing"], float(p["radius"] * p["aspect"]) * 0.8)
    d_cleft, d_wm = _cortex_sdfs(p, sul, phi, np.sqrt(u**2 + v**2), -d_brain, t)
    _paint(img, _soft(d_cleft, px) * _soft(d_brain, px), p["v_csf"])
    _paint(img, _soft(d_wm, px), p["v_wm"])

    # interhemispheric fissure: GM-lined CSF cleft along the midline, front and back
    inner = _soft(d_csf + np.float32(p["csf_rim"]), px)
    far = np.clip((np.abs(v) / b - 0.35) / 0.1, 0.0, 1.0)
    _paint(img, inner * far * _soft(np.abs(u) - 0.03, px), p["v_gm"])
    _paint(img, inner * far * _soft(np.abs(u) - 0.008, px), p["v_csf"])

    # deep grey nuclei (thalami / basal ganglia) and lateral ventricles, mid slices only
    deep = np.clip(1.0 - ((t - p["vent_t"]) / 0.55) ** 2, 0.0, 1.0)
    for side in (-1.0, 1.0):
        dn = _ellipse_sdf(u - side * 0.17, v - 0.12, 0.08, 0.13) + 0.09 * (1 - deep)
        _paint(img, _soft(dn, px), p["v_deep"])
    _paint(img, _soft(_ventricles_sdf(p, u, v, t), px), p["v_csf"])

    # very low fine texture, mild smooth bias field
    fx, fy = _freqs(size)
    fine = _filtered_noise(rng, num_slices, size, _gauss_tf(fx, fy, 1.0, 1.0, 0.0))
    img *= 1.0 + 0.02 * fine
    img *= np.exp(np.float32(p["bias"]) * _smooth_field(rng, t, x, y, 6, 0.8))

    support = dist < 0.0
    return _finish(img, head, support)


# ----------------------------------------------------------------------------
# knee
# ----------------------------------------------------------------------------
def _knee_params(rng) -> dict:
    """Per-volume anatomy and contrast of the knee (drawn once per seed)."""
    return dict(
        angle=rng.uniform(-0.12, 0.12),  # joint angle / limb tilt
        x0=rng.uniform(-0.05, 0.05),
        joint_y=rng.uniform(-0.05, 0.12),
        gap=rng.uniform(0.022, 0.034),
        anterior=float(rng.choice([-1.0, 1.0])),  # which side the patella sits on
        leg_w=rng.uniform(0.45, 0.515),  # half-width: background on both sides, as the brain has
        femur_w=rng.uniform(0.15, 0.19),
        condyle_a=rng.uniform(0.29, 0.34),
        condyle_b=rng.uniform(0.20, 0.25),
        plateau_w=rng.uniform(0.29, 0.34),
        tibia_w=rng.uniform(0.14, 0.18),
        patella_len=rng.uniform(0.16, 0.21),
        patella_t=rng.uniform(-0.3, 0.3),  # slice where the patella is widest
        cart=rng.uniform(0.018, 0.026),
        cortex=rng.uniform(0.010, 0.016),
        fat=rng.uniform(0.06, 0.10),
        trab_scale=rng.uniform(0.024, 0.032),  # trabecular spacing (normalised units)
        fibre_angle=rng.uniform(-0.25, 0.25),
        fibre_len=rng.uniform(0.10, 0.18),
        v_fat=rng.uniform(0.90, 1.0),
        v_muscle=rng.uniform(0.28, 0.36),
        v_marrow=rng.uniform(0.62, 0.72),
        v_cart=rng.uniform(0.80, 0.90),
        v_cortex=rng.uniform(0.03, 0.07),
        v_joint=rng.uniform(0.08, 0.15),
        v_tendon=rng.uniform(0.03, 0.08),
        bias=rng.uniform(0.10, 0.20),
    )


def _capsule_sdf(x, y, x1, y1, x2, y2, r):
    """Signed distance to a thick segment (tendons): round-ended band of half-width r."""
    bx, by = x2 - x1, y2 - y1
    px, py = x - x1, y - y1
    h = np.clip((px * bx + py * by) / (bx * bx + by * by), 0.0, 1.0)
    return np.sqrt((px - bx * h) ** 2 + (py - by * h) ** 2) - r


def _knee_bones(p, u, v, t) -> dict:
    """Bone SDFs (femur, tibia, patella) and landmarks in the limb frame (v runs down
    the limb, `anterior` is +-1). Slices away from t = 0 cut the bones off-centre, so
    the shafts narrow, the joint space changes and the patella shrinks away."""
    ant = np.float32(p["anterior"])
    jy = np.float32(p["joint_y"])
    # medial (t < 0) and lateral (t > 0) compartments differ: odd terms in t
    half_gap = np.float32(p["gap"]) * (1.0 + 0.25 * t) * 0.5
    width = 1.0 - 0.15 * t**2
    shaft = 1.0 - 0.40 * t**2
    cond_a = np.float32(p["condyle_a"]) * width
    cond_b = np.float32(p["condyle_b"]) * width * (1.0 - 0.1 * t)
    jy = jy + 0.03 * t
    cy = jy - half_gap - cond_b
    cx = -ant * (0.05 + 0.03 * t) * width  # condyles bulge posteriorly
    shaft_f = _box_sdf(u - cx * 0.3, v - (cy - 1.0), p["femur_w"] * shaft, 1.0, 0.05)
    femur = _smooth_union(shaft_f, _ellipse_sdf(u - cx, v - cy, cond_a, cond_b), 0.12)

    pw = np.float32(p["plateau_w"]) * width
    top = jy + half_gap
    plateau = _box_sdf(u + ant * 0.02, v - (top + 0.09), pw, 0.09, 0.045)
    shaft_t = _box_sdf(u + ant * 0.04, v - (top + 1.0), p["tibia_w"] * shaft, 1.0, 0.05)
    tibia = _smooth_union(plateau, shaft_t, 0.14)

    # patella rides on the anterior femur, separated by two cartilage layers
    pscale = np.sqrt(np.clip(1.0 - ((t - p["patella_t"]) / 0.8) ** 2, 0.0, 1.0)) + 1e-3
    plen, pwid = np.float32(p["patella_len"]) * pscale, 0.085 * pscale
    pv0 = cy - 0.10
    edge = cx + ant * cond_a * np.sqrt(1.0 - (0.10 / cond_b) ** 2)  # anterior femur surface
    pu0 = edge + ant * (2.2 * np.float32(p["cart"]) + 0.008 + pwid)
    pu, pv = _rotate(u, v, -ant * 0.12, pu0, pv0)
    patella = np.where(pscale > 0.05, _ellipse_sdf(pu, pv, pwid, plen), np.float32(1.0))
    return dict(femur=femur, tibia=tibia, patella=patella, cx=cx, cy=cy, cond_a=cond_a,
                jy=jy, top=top, pw=pw, pu0=pu0, pv0=pv0, plen=plen, pscale=pscale, shaft=shaft)


def _trabecular(rng, num_slices, size, scale_px, fx, fy):
    """Lattice of thin dark struts: ridges at zero-crossings of band-pass noise."""
    f2 = fx**2 + fy**2
    s1, s2 = 0.5 * scale_px, 1.0 * scale_px
    band = np.exp(-2 * np.pi**2 * s1**2 * f2) - np.exp(-2 * np.pi**2 * s2**2 * f2)
    nb = _filtered_noise(rng, num_slices, size, band)
    return np.exp(-((nb / 0.5) ** 2))


def _knee_soft_tissue(rng, p, g, u, v, t, x, y, leg, d_leg, px, fx, fy):
    """Muscle with oriented fibres and fat septa, subcutaneous fat, fat pads, tendons."""
    num_slices, size = leg.shape[0], x.shape[-1]
    ant, jy = np.float32(p["anterior"]), g["jy"]
    f_ang = np.pi / 2 + p["angle"] + p["fibre_angle"]  # fibres run along the limb axis
    across = max(1.2, 0.006 * size)  # fibres no thinner than about a pixel
    fibre_tf = _gauss_tf(fx, fy, p["fibre_len"] * size / 2, across, f_ang)
    septa_tf = _gauss_tf(fx, fy, 0.25 * size / 2, 2 * across, f_ang + 0.1)
    fibre = _filtered_noise(rng, num_slices, size, fibre_tf)
    septa = _filtered_noise(rng, num_slices, size, septa_tf)
    img = np.zeros(leg.shape, dtype=np.float32)
    _paint(img, leg, p["v_muscle"] * (1.0 + 0.22 * fibre))
    _paint(img, leg * np.exp(-((septa / 0.1) ** 2)) * 0.6, p["v_fat"] * 0.8)

    warp = 0.012 * _smooth_field(rng, t, x, y, 8, 5.0)
    subcutaneous = _soft(-(d_leg + np.float32(p["fat"]) + warp), px) * leg
    _paint(img, subcutaneous, p["v_fat"])

    # Hoffa's fat pad in front of the joint; popliteal fat with a dark vessel behind it
    hoffa = _ellipse_sdf(u - ant * (g["cond_a"] * 0.7), v - (jy + 0.03), 0.17, 0.12) + warp
    _paint(img, _soft(hoffa, px), p["v_fat"])
    pop_u = u + ant * (g["cond_a"] + 0.10)
    _paint(img, _soft(_ellipse_sdf(pop_u, v - jy + 0.15, 0.09, 0.30) + warp, px), 0.85 * p["v_fat"])
    _paint(img, _soft(_ellipse_sdf(pop_u, v - jy + 0.12, 0.028, 0.03), px), 0.12)

    # quadriceps tendon above and patellar tendon below the patella (dark bands)
    pu0, pv0, plen, ps = g["pu0"], g["pv0"], g["plen"], g["pscale"]
    tuber_u = ant * (np.float32(p["tibia_w"]) * g["shaft"] - 0.02)  # front of the tibia
    tend = _capsule_sdf(u, v, pu0 - ant * 0.02, pv0 + 0.8 * plen,
                        tuber_u, g["top"] + 0.30, 0.022 * ps)
    quad = _capsule_sdf(u, v, pu0 + ant * 0.01, pv0 - 0.8 * plen,
                        ant * (p["femur_w"] + 0.08), pv0 - 1.2, 0.03 * ps)
    _paint(img, _soft(np.minimum(tend, quad), px), p["v_tendon"])
    return img


def _knee_joint(img, p, g, u, v, px):
    """Dark joint space with meniscus-like wedges, then thin bright cartilage plates."""
    femur, tibia, patella = g["femur"], g["tibia"], g["patella"]
    cart = np.float32(p["cart"])
    ant = np.float32(p["anterior"])
    joint = (femur + tibia < 2 * cart + 0.05) & (np.abs(u) < g["pw"] + 0.02)
    _paint(img, joint.astype(np.float32) * _soft(np.maximum(femur, tibia) - 0.1, px), p["v_joint"])
    near_f = _soft(-(v - (g["cy"] - 0.05)), px)  # femoral condyle below its centre
    near_t = _soft(v - (g["top"] + 0.05), px)  # tibial plateau
    _paint(img, _soft(femur - cart, px) * near_f, p["v_cart"])
    _paint(img, _soft(tibia - cart, px) * near_t, p["v_cart"])
    facing = _soft(ant * (u - g["pu0"]), px)  # patellar surface facing the femur
    _paint(img, _soft(patella - cart * g["pscale"], px) * facing, p["v_cart"])
    trochlea = _soft(np.abs(v - g["pv0"]) - g["plen"], px) * _soft(-ant * (u - g["cx"]), px)
    _paint(img, _soft(femur - cart, px) * trochlea, p["v_cart"])  # femoral groove facing it
    return img


def knee_volume(seed: int, num_slices: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (image, support): image float32 [num_slices, size, size], values in [0, 1]
    with max 1 per volume; support bool [num_slices, size, size], True inside the leg.
    Sagittal PD-like contrast: bright fat, textured marrow, bright cartilage, dark muscle."""
    _check_args(num_slices, size)
    rng = np.random.default_rng(seed)
    p = _knee_params(rng)
    px = 2.0 / size
    t, x, y = _grid(num_slices, size)
    u, v = _rotate(x, y, p["angle"], p["x0"], 0.0)
    ant, jy = np.float32(p["anterior"]), np.float32(p["joint_y"])

    # leg outline: tall rounded box (cut by the field of view), wider around the knee
    bulge = 0.06 * np.exp(-(((v - jy) / 0.35) ** 2))
    leg_w = np.float32(p["leg_w"]) * (1.0 - 0.06 * t**2 + 0.04 * t) + bulge
    d_leg = _box_sdf(u - ant * 0.5 * bulge, v, leg_w, 1.15, 0.25)
    leg = _soft(d_leg, px)
    fx, fy = _freqs(size)

    g = _knee_bones(p, u, v, t)
    img = _knee_soft_tissue(rng, p, g, u, v, t, x, y, leg, d_leg, px, fx, fy)
    _knee_joint(img, p, g, u, v, px)

    # Trabecular struts are far below a pixel at coarse matrices; partial volume averages them
    # into a fainter, coarser mottle: drawn no finer than 3 px, at lower contrast when so.
    spacing = p["trab_scale"] * size / 2
    trab = _trabecular(rng, num_slices, size, max(_TRABECULAR_MIN_PX, spacing), fx, fy)
    contrast = 0.35 if spacing >= _TRABECULAR_MIN_PX else 0.2
    marrow = p["v_marrow"] * (1.0 - contrast * trab)
    cortex = np.float32(p["cortex"])
    for bone in (g["femur"], g["tibia"], g["patella"]):  # dark cortical rim, textured marrow
        _paint(img, _soft(bone, px), p["v_cortex"])
        _paint(img, _soft(bone + cortex, px), marrow)

    img *= np.exp(np.float32(p["bias"]) * _smooth_field(rng, t, x, y, 6, 0.8))
    return _finish(img, leg, d_leg < 0.0)
