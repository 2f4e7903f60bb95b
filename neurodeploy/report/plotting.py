"""Matplotlib set-up shared by the figure modules (imported lazily: plotting is optional)."""
from __future__ import annotations


def plt():
    """matplotlib.pyplot with the non-interactive Agg backend (figures are written to files)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as pyplot

    return pyplot


def new_ax(ax, figsize=(7, 3.5)):
    """``(fig, ax)``: the given axes and their figure, or a new figure of ``figsize``."""
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt().subplots(figsize=figsize, constrained_layout=True)
    return fig, ax
