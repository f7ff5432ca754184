"""A simple drift picture of collected inputs: per feature and per day, the population stability index (PSI)
against a reference sample.

PSI = sum over bins of ``(p_current - p_reference) * ln(p_current / p_reference)``, with ``bins`` bins cut at
the reference's quantiles (so each holds about the same share of the reference) and open-ended outer bins;
empty bins count as ``1e-4``. Common reading: < 0.1 no shift, 0.1–0.25 moderate, > 0.25 large.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from jupyter_mldeploy.errors import InvalidArgument
from jupyter_mldeploy.monitoring.store import TIMESTAMP_COLUMN

if TYPE_CHECKING:  # pragma: no cover
    import pandas

#: Below this share, a bin counts as this share (keeps the logarithm finite).
EMPTY_SHARE = 1e-4
#: PSI thresholds of the usual reading: (moderate, large).
PSI_THRESHOLDS = (0.1, 0.25)


def population_stability_index(reference: Any, current: Any, bins: int = 10) -> float:
    """Return the PSI of ``current`` against ``reference`` (1-D numeric samples).

    Args:
        reference: The expected distribution's sample (e.g. the training data's column).
        current: The observed sample.
        bins: Number of quantile bins of the reference.

    Returns:
        float: >= 0; NaN when either sample has no finite value.
    """
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if ref.size == 0 or cur.size == 0:
        return float("nan")
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_share = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=edges.size + 1) / ref.size
    cur_share = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=edges.size + 1) / cur.size
    ref_share, cur_share = np.maximum(ref_share, EMPTY_SHARE), np.maximum(cur_share, EMPTY_SHARE)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


def reference_frame(reference: Any, columns: list[str]) -> pandas.DataFrame:
    """Return a reference sample as a DataFrame with the collected feature columns.

    Args:
        reference: A DataFrame, a list of rows (in ``columns`` order) or records, or ``{"data": rows}`` (a
            model's ``sample_input``).
        columns: The collected feature names, used for list rows.

    Raises:
        InvalidArgument: When ``reference`` has none of the collected features.
    """
    import pandas as pd

    if isinstance(reference, dict) and "data" in reference:
        reference = reference["data"]
    if isinstance(reference, pd.DataFrame):
        frame = reference
    elif isinstance(reference, list) and reference and isinstance(reference[0], dict):
        frame = pd.DataFrame(reference)
    else:
        rows = np.asarray(reference, dtype=object)
        rows = rows.reshape(-1, 1) if rows.ndim == 1 else rows
        frame = pd.DataFrame(rows, columns=columns[: rows.shape[1]] if rows.shape[1] <= len(columns) else None)
    shared = [c for c in columns if c in frame.columns]
    if not shared:
        raise InvalidArgument(
            f"The reference has none of the collected features {columns}: give a DataFrame with those columns "
            "(or rows in that order)."
        )
    return frame[shared]


def drift_table(collected: pandas.DataFrame, reference: Any, bins: int = 10) -> pandas.DataFrame:
    """Return the PSI of each collected numeric feature, per UTC day, against ``reference``.

    Args:
        collected: What :func:`~jupyter_mldeploy.monitoring.read_collected_data` returned (inputs).
        reference: See :func:`reference_frame`.
        bins: Quantile bins of the reference.

    Returns:
        pandas.DataFrame: Columns ``feature, day, rows, mean, reference_mean, psi, drift`` (``drift``: ``none``,
        ``moderate`` or ``large`` by :data:`PSI_THRESHOLDS`); one row per feature and day, sorted by both.
    """
    import pandas as pd

    columns = [c for c in collected.columns if not str(c).startswith("$aml_")]
    if collected.empty or not columns:
        return pd.DataFrame(columns=["feature", "day", "rows", "mean", "reference_mean", "psi", "drift"])
    ref = reference_frame(reference, columns)
    days = collected[TIMESTAMP_COLUMN].dt.strftime("%Y-%m-%d")
    rows = []
    for feature in ref.columns:
        expected = pd.to_numeric(ref[feature], errors="coerce")
        observed_all = pd.to_numeric(collected[feature], errors="coerce")
        for day, observed in observed_all.groupby(days):
            psi = population_stability_index(expected, observed, bins)
            level = "large" if psi > PSI_THRESHOLDS[1] else "moderate" if psi > PSI_THRESHOLDS[0] else "none"
            rows.append({"feature": feature, "day": day, "rows": int(observed.size), "mean": float(observed.mean()),
                         "reference_mean": float(expected.mean()), "psi": round(psi, 4), "drift": level})
    return pd.DataFrame(rows).sort_values(["feature", "day"], ignore_index=True)
