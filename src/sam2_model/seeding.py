"""Point prompts for small cells: one point per detected blob (scikit-image Laplacian of Gaussian).

A 32 x 32 grid puts a point every 8 px of a 256 px frame and every 32 px of a 1024 px frame, so
cells a few tens of pixels wide are hit by zero, one or several points, and many are missed.
:func:`blob_points` instead finds bright blobs of the expected size and returns one point each,
to be used as ``AutomaticMaskGenerator.generate(image, points=...)``.

Steps: the frame (grey, or the mean of its channels) is normalised by its 1 / 99.8 percentiles to
[0, 1] (so thresholds do not depend on dtype or exposure); ``skimage.feature.blob_log`` looks for
scale-space maxima with sigma in [d_min / (2 sqrt 2), d_max / (2 sqrt 2)] (a disc of diameter d
gives the strongest LoG response at sigma = d / (2 sqrt 2)); points closer than 1.5 times a stronger
blob's radius are merged (the strongest is kept).
"""

from __future__ import annotations

import inspect
import math
import re
import warnings
from typing import Any, Generator, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from .prompt_validation import channels_last_problem
from .work_steps import drain

__all__ = ["blob_points", "blob_points_steps", "DEFAULT_THRESHOLD", "DEFAULT_CELL_DIAMETER", "MIN_BLOB_DIAMETER",
           "diameter_fit_problem"]

DEFAULT_THRESHOLD = 0.02  # scale-normalised LoG response on the [0, 1] frame; dim nuclei give ~0.03
PERCENTILES = (1.0, 99.8)
NUM_SIGMA = 6
MERGE_FRACTION = 1.5  # points closer than 1.5 radii of a stronger blob are the same cell
BLOB_OVERLAP = 0.5  # blob_log drops the smaller of two blobs overlapping by more than this fraction
MAX_CHANNELS = 4  # (H, W, C) frames with 1-4 channels (grey, RGB, RGBA, ...) are averaged over C
# scikit-image versions (major, minor) whose blob_log _blob_log_steps follows pass by pass, checked equal to blob_log
# (tests/test_seeding.py); with any other, blob_log runs in one go (the same blobs, not stoppable between passes)
CHECKED_SKIMAGE = ((0, 26),)
#: how the diameter range is set, in messages (the command line's and the Python API's names)
NAMES = "--cell-diameter MIN MAX; cell_diameter=(min, max)"
#: the diameter range (min, max) px looked for where none is given (blob_points, the detector, the tracker)
DEFAULT_CELL_DIAMETER = (8.0, 40.0)
#: the smallest minimum diameter (px) the blob search takes: its finest LoG scale, sigma = 2 / (2 sqrt 2) ~ 0.7 px,
#: is already about a pixel; the one home of this rule (the detector, the division checks and the commands' words)
MIN_BLOB_DIAMETER = 2.0


def _check_diameters(cell_diameter: Any) -> Tuple[float, float]:
    try:
        values = np.asarray(cell_diameter, dtype=np.float64).reshape(-1) if cell_diameter is not None else None
    except (TypeError, ValueError):
        values = None
    if values is None or values.shape not in ((1,), (2,)) or not np.isfinite(values).all():
        raise ValueError(f"cell_diameter must be a number or a (min, max) pair of pixels, got {cell_diameter!r}")
    low, high = (values[0], values[0]) if values.shape == (1,) else (values[0], values[1])
    if not MIN_BLOB_DIAMETER <= low <= high:
        raise ValueError(f"cell_diameter must satisfy {MIN_BLOB_DIAMETER:g} <= min <= max (pixels), got "
                         f"{cell_diameter!r}")
    return float(low), float(high)


def fit_diameters(low: float, high: float, frame_shape: Sequence[int], names: str = NAMES) -> Tuple[float, float]:
    """The cell diameter range (``low``, ``high``) px that blob seeding looks for on a frame of ``frame_shape`` (H, W),
    cut without a word (:func:`diameter_cut_words` says it where the range was the person's).

    A cell wider than the frame's short side is not seen whole, and blob scales past it only find the frame's edges
    and noise (a 100000 x 8 strip seeded at 8-40 px ran for minutes with nothing said about the range): the range is
    returned as it is where ``high`` fits across the short side, else with ``high`` cut to the short side; a
    ValueError (:func:`diameter_fit_problem`, naming how the range is set: ``names``) where even ``low`` is wider
    than the short side (no cell of the range fits)."""
    problem = diameter_fit_problem(low, high, frame_shape, names)
    if problem is not None:
        raise ValueError(problem)
    return low, float(min(high, min(int(frame_shape[0]), int(frame_shape[1]))))


def _range_words(low: float, high: float, frame_shape: Sequence[int], label: str = "cell_diameter") -> Tuple[str, int]:
    """("<label> LOW-HIGH px is wider than the H x W px frame, S px across at its short side", S)."""
    rows, cols = int(frame_shape[0]), int(frame_shape[1])
    short = min(rows, cols)
    return (f"{label} {low:g}-{high:g} px is wider than the {rows} x {cols} px frame, {short} px across at its "
            "short side"), short


def diameter_fit_problem(low: float, high: float, frame_shape: Sequence[int], names: str = NAMES) -> Optional[str]:
    """Why no cell of the diameter range (``low``, ``high``) px fits in a frame of ``frame_shape`` (H, W) (``low``
    wider than its short side), or None. ``names``: how the range is set, put in brackets (the command line's and the
    API's by default; "" leaves them out). For a check before long work (a model load, a run): the blob search of
    each frame refuses such a range with these words (:func:`fit_diameters`)."""
    words, short = _range_words(low, high, frame_shape)
    if low <= short:
        return None
    example = f" (e.g. {max(2.0, short / 2):g} {short})" if short >= 2 else ""
    return (f"{words}: no cell of that range fits in it; give a range of at most {short} px{example}"
            f"{f' ({names})' if names else ''}, or a larger frame")


def diameter_cut_words(low: float, high: float, frame_shape: Sequence[int], names: str = "",
                       what: str = "note") -> str:
    """"" where the diameter range (``low``, ``high``) px fits a frame of ``frame_shape`` (H, W); else what
    :func:`fit_diameters` does to it, in words for the person who gave the range: the cells looked for (those of the
    range that fit across the frame's short side) and, with ``names`` (how the range is set, e.g. :data:`NAMES`), that
    a maximum of at most the short side says so without this ``what`` ("note", "warning"); without ``names`` the range
    is called "cell diameter" (as the Track all panel's boxes), with them "cell_diameter"."""
    words, short = _range_words(low, high, frame_shape, "cell_diameter" if names else "cell diameter")
    if high <= short:
        return ""
    told = f"; a maximum of at most {short} px ({names}) says so without this {what}" if names else ""
    return f"{words}: cells of {low:g}-{short} px are looked for, those that fit{told}"


def _layout_problem(shape: Tuple[int, ...]) -> Optional[str]:
    """Why an array of ``shape`` is not one non-empty (H, W) or (H, W, C) frame with C in 1..4, or None (channel-first
    arrays and stacks: :func:`~sam2_model.prompt_validation.channels_last_problem`, as ImagePredictor reads them)."""
    accepted = (f"image must be one non-empty frame, (H, W) or (H, W, C) with 1-{MAX_CHANNELS} channels last, "
                f"got shape {shape}")
    if len(shape) not in (2, 3) or 0 in shape:
        return accepted
    if len(shape) == 3:
        problem = channels_last_problem(shape)
        if problem is not None or shape[2] > MAX_CHANNELS:
            return problem or accepted
    return None


def normalise_frame(image: Any) -> np.ndarray:
    """(H, W) or (H, W, C) numeric, C in 1..4 -> (H, W) float64 in [0, 1] by the 1 / 99.8 percentiles (channel mean);
    a flat frame gives float32 zeros.

    Any other shape (a (T, H, W) stack, a channel-first (C, H, W) image) is a ValueError naming it."""
    array = np.asarray(image)
    if (problem := _layout_problem(array.shape)) is not None:
        raise ValueError(problem)
    if array.ndim == 3:
        array = array.mean(axis=2)
    if array.dtype.kind not in "uifb":
        raise ValueError(f"image must have a numeric dtype, got {array.dtype}")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise ValueError("image contains NaN or infinite values")
    low, high = np.percentile(array, PERCENTILES)
    if high <= low:
        return np.zeros(array.shape, np.float32)
    return np.clip((array - low) / (high - low), 0.0, 1.0)


def blob_points_steps(
    image: Any,
    cell_diameter: Optional[Sequence[float]] = None,
    threshold: Optional[float] = None,
    relative_threshold: Optional[float] = None,
    dark_cells: bool = False,
    min_distance: Optional[float] = None,
    warn_cut: bool = True,
) -> Generator[Tuple[int, int], None, np.ndarray]:
    """One (x, y) point per bright blob of diameter in ``cell_diameter`` = (min, max) pixels.

    image: (H, W) or (H, W, C) with 1-4 channels last (averaged), any numeric dtype; other shapes (a (T, H, W)
    stack, a channel-first (C, H, W) image) are a ValueError. threshold: absolute minimum of the
    scale-normalised LoG response on the [0, 1]-normalised frame (default
    :data:`DEFAULT_THRESHOLD`, 0.02; lower finds dimmer cells and more false points);
    relative_threshold: instead a fraction of the strongest response (exclusive with threshold).
    dark_cells: look for dark blobs on a bright background. min_distance: points closer than this
    are merged, keeping the stronger (default: 1.5 times the stronger blob's radius).
    Returns (N, 2) float64 (x, y) pixel coordinates (blob centres), strongest first. cell_diameter None: the default
    :data:`DEFAULT_CELL_DIAMETER` (8, 40). A range wider than the frame's short side is cut to it
    (:func:`fit_diameters`), the default without a word, a range given with a UserWarning saying so
    (:func:`diameter_cut_words`; ``warn_cut=False``: none, for a caller that has said it once already), and refused
    (ValueError) where even its minimum is wider.

    A generator (:func:`blob_points` runs it in one call): ``(done, total)`` is yielded after each filter pass over the
    frame (a LoG layer, the scale-space maxima, a response), so that a caller can show progress and stop (close it)
    between passes: on a 2048 x 2048 frame the whole search took 40 s on 2 free CPU cores, one pass 1-3 s.
    (With a scikit-image other than :data:`CHECKED_SKIMAGE`, the blob search is one step: the same points.)
    """
    low, high = _check_diameters(DEFAULT_CELL_DIAMETER if cell_diameter is None else cell_diameter)
    if threshold is not None and relative_threshold is not None:
        raise ValueError("give threshold (absolute) or relative_threshold (fraction of the strongest), not both")
    for name, value in (("threshold", threshold), ("relative_threshold", relative_threshold)):
        if value is not None and (not np.isfinite(value) or value < 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if relative_threshold is not None and relative_threshold > 1:
        raise ValueError(f"relative_threshold must be in [0, 1], got {relative_threshold!r}")
    from skimage.feature import blob_log  # imported here: `import sam2_model` stays light

    frame = normalise_frame(image)
    cut = diameter_cut_words(low, high, frame.shape, NAMES, "warning") if cell_diameter is not None else ""
    low, high = fit_diameters(low, high, frame.shape)
    if cut and warn_cut:
        from .tracking.detection import user_stacklevel  # (loaded with the tracker that seeds; only where it warns)

        warnings.warn(cut, UserWarning, stacklevel=user_stacklevel())
    if dark_cells:
        frame = 1.0 - frame
    if not frame.any():
        return np.zeros((0, 2), np.float64)
    sigmas = (low / (2 * math.sqrt(2)), high / (2 * math.sqrt(2)))
    num_sigma = 1 if sigmas[0] == sigmas[1] else NUM_SIGMA
    absolute = DEFAULT_THRESHOLD if threshold is None and relative_threshold is None else threshold
    layers: list = []
    if _blob_log_parts() is None:  # not a scikit-image whose steps _blob_log_steps follows: in one go
        total = 2 * num_sigma + 1  # the blob search, at most one response per layer
        blobs = blob_log(frame, min_sigma=sigmas[0], max_sigma=sigmas[1], num_sigma=num_sigma, threshold=absolute,
                         threshold_rel=relative_threshold, overlap=BLOB_OVERLAP, exclude_border=False)
        yield num_sigma + 1, total
    else:
        total = num_sigma + 2  # the LoG layers, the maxima, the points
        blobs = yield from _blob_log_steps(frame, sigmas, num_sigma, absolute, relative_threshold, total, layers)
    if len(blobs) == 0:
        return np.zeros((0, 2), np.float64)
    rows, cols, sigma = blobs[:, 0], blobs[:, 1], blobs[:, 2]
    strength = _layer_response(layers, rows, cols, sigma) if layers else None
    if strength is None:  # no LoG layers kept (blob_log in one go): each blob's layer again
        strength = np.empty(len(rows), np.float64)
        for done, value in enumerate(np.unique(sigma), start=num_sigma + 2):
            pick = sigma == value
            strength[pick] = _log_response(frame, rows[pick], cols[pick], sigma[pick])
            yield done, total
    layers.clear()
    order = np.argsort(-strength, kind="stable")
    if min_distance is not None and (not np.isfinite(min_distance) or min_distance < 0):
        raise ValueError(f"min_distance must be a finite number >= 0, got {min_distance!r}")
    # a blob of scale sigma is a disc of radius ~ sigma * sqrt(2): another point inside it is the same cell
    reach = sigma[order] * math.sqrt(2) * MERGE_FRACTION if min_distance is None else np.full(len(order), min_distance)
    points = np.stack([cols[order], rows[order]], axis=1).astype(np.float64)
    points = _deduplicate(points, reach)
    yield total, total
    return points


def blob_points(
    image: Any,
    cell_diameter: Optional[Sequence[float]] = None,
    threshold: Optional[float] = None,
    relative_threshold: Optional[float] = None,
    dark_cells: bool = False,
    min_distance: Optional[float] = None,
    warn_cut: bool = True,
) -> np.ndarray:
    """One (x, y) point per bright blob of diameter in ``cell_diameter`` = (min, max) pixels (None: the default 8-40):
    (N, 2) float64, strongest first. The arguments and the work are :func:`blob_points_steps`' (see there), done in
    one call."""
    return drain(blob_points_steps(image, cell_diameter, threshold, relative_threshold, dark_cells, min_distance,
                                   warn_cut))


blob_points.steps = blob_points_steps  # type: ignore[attr-defined]  # (what a detector runs piece by piece)


def _skimage_version() -> Optional[Tuple[int, int]]:
    """(major, minor) of the scikit-image installed, or None where its ``__version__`` does not say them."""
    import skimage

    found = re.match(r"(\d+)\.(\d+)", str(getattr(skimage, "__version__", "")))
    return (int(found[1]), int(found[2])) if found else None


def _blob_log_parts() -> Optional[Tuple[Any, Any, Any, Any]]:
    """scikit-image's pieces of ``blob_log`` that :func:`_blob_log_steps` runs one by one (img_as_float,
    _supported_float_type, peak_local_max, _prune_blobs), or None (then ``blob_log`` runs in one go: the same blobs,
    only not stoppable between its passes) where the scikit-image installed is not one of :data:`CHECKED_SKIMAGE`
    (private pieces may work differently under the same names), lacks one of them, or one no longer takes the
    arguments :func:`_blob_log_steps` passes."""
    if _skimage_version() not in CHECKED_SKIMAGE:
        return None
    try:
        from skimage._shared.utils import _supported_float_type
        from skimage.feature import blob as _blob
        from skimage.feature import peak_local_max
        from skimage.util import img_as_float

        prune_blobs = _blob._prune_blobs
        cube = np.zeros((1, 1, 1))
        inspect.signature(img_as_float).bind(cube)
        inspect.signature(_supported_float_type).bind(cube.dtype)
        inspect.signature(peak_local_max).bind(cube, threshold_abs=None, threshold_rel=None, exclude_border=(0,) * 3,
                                               footprint=cube)
        inspect.signature(prune_blobs).bind(cube[0], BLOB_OVERLAP, sigma_dim=1)
    except (ImportError, AttributeError, TypeError, ValueError):  # (TypeError: the arguments are not taken)
        return None
    return img_as_float, _supported_float_type, peak_local_max, prune_blobs


def _blob_log_steps(frame: np.ndarray, sigmas: Tuple[float, float], num_sigma: int, threshold: Optional[float],
                    threshold_rel: Optional[float], total: int, layers: Optional[list] = None
                    ) -> Generator[Tuple[int, int], None, np.ndarray]:
    """``skimage.feature.blob_log(frame, min_sigma=sigmas[0], max_sigma=sigmas[1], num_sigma=num_sigma, threshold=...,
    threshold_rel=..., overlap=BLOB_OVERLAP, exclude_border=False)`` done as scikit-image 0.26 does it, yielding
    ``(done, total)`` after each LoG layer and after the scale-space maxima: the same blobs (N, 3) (row, col, sigma).
    ``layers``: a list to which the LoG layers (H, W, num_sigma) and their sigmas (num_sigma,) are appended as a pair
    (then kept for :func:`_layer_response`, not freed before the blobs are pruned)."""
    img_as_float, supported_float_type, peak_local_max, prune_blobs = _blob_log_parts()
    image = img_as_float(frame)
    float_dtype = supported_float_type(image.dtype)
    image = image.astype(float_dtype, copy=False)
    low = np.full(image.ndim, sigmas[0], dtype=float_dtype)
    high = np.full(image.ndim, sigmas[1], dtype=float_dtype)
    sigma_list = np.linspace(low, high, num_sigma)
    cube = np.empty(image.shape + (len(sigma_list),), dtype=float_dtype)
    for i, s in enumerate(sigma_list):
        cube[..., i] = -ndimage.gaussian_laplace(image, s) * np.mean(s) ** 2
        yield i + 1, total
    maxima = peak_local_max(cube, threshold_abs=threshold, threshold_rel=threshold_rel,
                            exclude_border=(0,) * (image.ndim + 1), footprint=np.ones((3,) * (image.ndim + 1)))
    if layers is not None:
        layers.append((cube, sigma_list[:, 0]))
    del cube
    yield num_sigma + 1, total
    if maxima.size == 0:
        return np.empty((0, image.ndim + 1))
    found = maxima.astype(float_dtype)
    sigmas_of_peaks = sigma_list[maxima[:, -1]][:, 0:1]
    return prune_blobs(np.hstack([found[:, :-1], sigmas_of_peaks]), BLOB_OVERLAP, sigma_dim=1)


def _layer_response(layers: list, rows: np.ndarray, cols: np.ndarray, sigma: np.ndarray) -> Optional[np.ndarray]:
    """Each blob's strength read from the LoG layers :func:`_blob_log_steps` kept (``layers``: [(cube (H, W, S),
    sigmas (S,))]): the values :func:`_log_response` computes again (the same filter of the same float32 frame, times
    the same sigma squared). None where the layers are not float64 (float32 layers took their sigmas as float32,
    which scipy's kernel rounds unlike the float :func:`_log_response` passes) or a blob's sigma is not one of
    theirs. (The frames :func:`normalise_frame` makes are float64.)"""
    cube, layer_sigmas = layers[0]
    if cube.dtype != np.float64:
        return None
    index = np.searchsorted(layer_sigmas, sigma)
    index = np.minimum(index, len(layer_sigmas) - 1)
    if not np.array_equal(layer_sigmas[index], sigma):
        return None
    return cube[rows.astype(int), cols.astype(int), index].astype(np.float64)


def _log_response(frame: np.ndarray, rows: np.ndarray, cols: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Scale-normalised (negated) LoG of ``frame`` at each blob's position and sigma."""
    strength = np.empty(len(rows), np.float64)
    for value in np.unique(sigma):
        response = -ndimage.gaussian_laplace(frame, float(value)) * float(value) ** 2
        pick = sigma == value
        strength[pick] = response[rows[pick].astype(int), cols[pick].astype(int)]
    return strength


def _deduplicate(points: np.ndarray, reach: np.ndarray) -> np.ndarray:
    """Greedy: keep points in order, dropping any closer to a kept point than that point's reach.

    points (N, 2), reach (N,) -> (K, 2)."""
    kept = np.zeros(len(points), dtype=bool)
    for index, point in enumerate(points):
        near = np.hypot(*(points[kept] - point).T) < reach[kept]
        kept[index] = not near.any()
    return points[kept]
