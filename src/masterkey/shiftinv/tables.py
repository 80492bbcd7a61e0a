"""Tables of the shift-invariance study ([C]; docs/methods.md section 8), from the per-filter
frames of :func:`~.analysis.filter_analysis` (one per filter bank: a DT-CWPT depth or a network's
first layer)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

__all__ = ["CAPTIONS", "gabor_table", "bounds_table", "first_layers_table", "dtcwpt_label"]

CAPTIONS = {
    "gabor": "[C] Gabor-likeness rho(kappa) of the DT-CWPT's complex filters per depth J: share of each "
    "filter's energy inside the kappa_J x kappa_J window centred at its characteristic frequency, "
    "kappa_J = pi / m_J, m_J = 2^(J-1).",
    "bounds": "[C] Measured against the theory per filter bank, over the admissible filters (90 % of "
    "the energy within a window of side at most pi/m, not low-pass: the theorem's hypothesis): "
    "share of filters whose measured RMax shift instability E[R~] (1-pixel shifts) and "
    "RMax-CMod discrepancy sqrt(E[P~^2]) lie below their bounds, means, and the Spearman rank "
    "correlations of the measures with gamma_q(m theta) and of the instability with the discrepancy.",
    "first_layers": "[C] First layers of the configured networks: stride m, the max pooling after the "
    "convolution (the theorem applies only to a (2q+1)^2/2 pooling), monochrome energy share, "
    "low-pass and Gabor-like (bandwidth <= pi/m) filters, and the shift instability measured for "
    "RMax (or the strided convolution without pooling) and for CMod.",
}


def dtcwpt_label(depth: int) -> str:
    """The name of the DT-CWPT of ``depth`` in tables and legends."""
    return f"DT-CWPT J={depth}"


def gabor_table(frames: Mapping[int, pd.DataFrame]) -> pd.DataFrame:
    """Per depth ``J`` (``frames``: depth -> frame): filters, ``m``, ``kappa`` (radians per sample)
    and the mean, standard deviation, minimum and median of ``rho``."""
    rows = []
    for depth, frame in frames.items():
        rho = frame["rho"]
        rows.append({
            "J": depth, "filters": len(frame), "m": int(frame["subsampling"].iloc[0]),
            "kappa": float(frame["kappa"].iloc[0]), "rho mean": rho.mean(), "rho std": rho.std(ddof=0),
            "rho min": rho.min(), "rho median": rho.median(),
        })  # fmt: skip
    return pd.DataFrame(rows)


def _spearman(x: pd.Series, y: pd.Series) -> float:
    if len(x) < 3 or x.nunique() < 2 or y.nunique() < 2:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def bounds_table(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per filter bank (``frames``: label -> frame), over its admissible filters (bandwidth at most
    ``pi / m``, not low-pass: the theorem's hypothesis) with finite bounds:
    counts, the shares below the bounds, the means of measures and bounds, and the rank correlations
    of each measure with ``gamma`` and of the instability with the discrepancy.  A bank without such
    filters (no max pooling) gets one row of counts."""
    rows = []
    for label, frame in frames.items():
        kept = frame[frame["admissible"] & frame["instability_bound"].notna()]
        row = {"filter bank": label, "filters": len(frame), "analysed": len(kept)}
        if len(kept):
            row.update({
                "instability below bound": float((kept["instability"] <= kept["instability_bound"]).mean()),
                "discrepancy below bound": float((kept["discrepancy"] <= kept["discrepancy_bound"]).mean()),
                "instability": kept["instability"].mean(),
                "instability bound": kept["instability_bound"].mean(),
                "discrepancy": kept["discrepancy"].mean(),
                "discrepancy bound": kept["discrepancy_bound"].mean(),
                "CMod instability": kept["instability_cmod"].mean(),
                "spearman(instability, gamma)": _spearman(kept["instability"], kept["gamma"]),
                "spearman(discrepancy, gamma)": _spearman(kept["discrepancy"], kept["gamma"]),
                "spearman(instability, discrepancy)": _spearman(kept["instability"], kept["discrepancy"]),
            })  # fmt: skip
        rows.append(row)
    return pd.DataFrame(rows)


def first_layers_table(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per network (``frames``: name -> its first layer's frame): layer, kernel size, stride, pool,
    whether the theorem applies, filters, mean monochrome share, low-pass and Gabor-like
    (``admissible``) shares, the mean and maximum instability (RMax, or the strided convolution
    when there is no max pooling), CMod's mean instability, and the filters above the bound."""
    rows = []
    for network, frame in frames.items():
        band = frame[~frame["lowpass"]]
        above = band["instability"] > band["instability_bound"]
        rows.append({
            "network": network, "layer": frame["layer"].iloc[0], "kernel": frame["kernel_size"].iloc[0],
            "stride": int(frame["stride"].iloc[0]), "pool": frame["pool"].iloc[0],
            "theorem applies": bool(frame["applies"].iloc[0]), "filters": len(frame),
            "monochrome share": frame["share"].mean(), "low-pass": float(frame["lowpass"].mean()),
            "Gabor-like": float(frame["admissible"].mean()), "rho median": frame["rho"].median(),
            "instability": frame["instability"].mean(), "instability max": frame["instability"].max(),
            "CMod instability": frame["instability_cmod"].mean(),
            "above bound": int(above.sum()) if frame["applies"].iloc[0] else np.nan,
        })  # fmt: skip
    return pd.DataFrame(rows)
