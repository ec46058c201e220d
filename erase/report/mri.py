"""The pictures of "MRI reconstruction in one page": images side by side, each on its own grey
scale (an object, coil images and k-space differ by orders of magnitude), and k-space shown on
a logarithmic scale."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots


def unit(image) -> np.ndarray:
    """The image on its own grey scale: divided by its maximum (an all-zero image stays 0)."""
    image = np.asarray(image, dtype=float)
    return image / (image.max() or 1.0)


def log_kspace(kspace, reference) -> np.ndarray:
    """|k-space| on a logarithmic scale, log(1 + |k| / (1e-3 max |reference|)): its values span
    orders of magnitude. ``reference``: the k-space whose maximum sets the scale (all coils)."""
    return np.log1p(np.abs(kspace) / (1e-3 * np.abs(reference).max()))


def image_grid(images, titles, cols: int = 2) -> go.Figure:
    """Images in a grid of ``cols`` columns, each on its own grey scale, square pixels."""
    rows = -(-len(images) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.04,
                        vertical_spacing=0.08)
    for i, image in enumerate(images):
        fig.add_trace(go.Heatmap(z=np.flipud(unit(image)), colorscale="Gray", zmin=0, zmax=1,
                                 showscale=False,
                                 hovertemplate="x %{x}, y %{y}: %{z:.2f}<extra></extra>"),
                      i // cols + 1, i % cols + 1)
        axis = "" if i == 0 else str(i + 1)
        fig.update_layout({f"yaxis{axis}": dict(scaleanchor=f"x{axis}")})
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, constrain="domain")
    fig.update_layout(height=320 * rows + 40, margin=dict(l=10, r=10, t=50, b=10))
    return fig
