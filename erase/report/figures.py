"""Plotly builders for every figure of the paper, drawn from this run's records and images.

Each function returns a ``plotly.graph_objects.Figure``; the chapters only call them. Images
in one comparison share one colour scale and one colour bar, so a brighter error map means a
larger error, not a different scaling.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..paper import ORACLE, display_name

DASHES = ("solid", "dash", "dot", "dashdot", "longdash")  # one per seed: five seeds, five dashes
TITLE_ROOM = 64  # px above subplots: their titles sit below plotly's mode bar, not under it

COLORS = {ORACLE: "#1b9e77", "oracle": "#1b9e77", "G": "#d95f02", "original": "#d95f02",
          "FT": "#7570b3", "Full FT": "#e7298a", "GA-l1": "#66a61e", "NL": "#e6ab02",
          "GA-l1-FT": "#a6761d", "NL-FT": "#1f78b4", "Retrain": "#1b9e77",
          "SalUn": "#e31a1c", "SSD": "#17becf", "SCRUB": "#6a3d9a", "l1-sparse": "#b15928"}


def image_row(images, titles, *, zmax=None, error_zmax=None, errors=(), height=300,
              boxes=None, title=None, each_scale: bool = False) -> go.Figure:
    """Images side by side; indices in ``errors`` use a shared error colour scale.

    ``boxes`` maps a column index to (row0, row1, col0, col1), drawn as a red rectangle
    (where the paper circles hallucinations). ``each_scale``: every image on its own grey
    scale (for images of different kinds or magnitudes, such as coil images beside k-space),
    and no intensity bar, since the panels share none.
    """
    n = len(images)
    fig = make_subplots(rows=1, cols=n, subplot_titles=titles, horizontal_spacing=0.01)
    if each_scale:
        zmax = None
    else:
        zmax = zmax if zmax is not None else max(
            (float(np.max(im)) for i, im in enumerate(images) if i not in errors), default=None)
    if errors:
        error_zmax = error_zmax or max(float(np.max(images[i])) for i in errors)
    for i, image in enumerate(images):
        is_error = i in errors
        top = error_zmax if is_error else (float(np.max(image)) or 1.0) if each_scale else zmax
        fig.add_trace(go.Heatmap(
            z=np.flipud(image), colorscale="Inferno" if is_error else "Gray",
            zmin=0, zmax=top,
            showscale=(i == n - 1 and is_error) or (i == 0 and not is_error and not each_scale),
            colorbar=dict(len=0.9, x=1.0 if is_error else -0.02,
                          xanchor="left" if is_error else "right",
                          thickness=10,
                          title="|error|" if is_error else "intensity"),
            hovertemplate="x %{x}, y %{y}: %{z:.3g}<extra></extra>"), 1, i + 1)
        for (r0, r1, c0, c1) in (boxes or {}).get(i, []):
            h = image.shape[0]
            fig.add_shape(type="rect", x0=c0 - 0.5, x1=c1 - 0.5, y0=h - r1 - 0.5, y1=h - r0 - 0.5,
                          line=dict(color="red", width=2), row=1, col=i + 1)
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, scaleanchor="x", constrain="domain")
    for i in range(2, n + 1):
        fig.update_yaxes(scaleanchor=f"x{i}", row=1, col=i)
    fig.update_layout(height=height, margin=dict(l=110, r=90 if errors else 20,
                                                 t=TITLE_ROOM + (24 if title else 0), b=10),
                      title=title)
    fig.update_annotations(font_size=14 if n < 5 else 11)  # five titles fit the page's width
    return fig


def training_curves(histories: dict) -> go.Figure:
    """Validation PSNR per epoch, brain and knee, for each trained model (and seed)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("brain validation", "knee validation"))
    for (name, seed), history in histories.items():
        epochs = [h["epoch"] for h in history]
        for col, anatomy in ((1, "brain"), (2, "knee")):
            fig.add_trace(go.Scatter(
                x=epochs, y=[h["metrics"].get(f"{anatomy}_psnr") for h in history],
                mode="lines+markers", name=f"{display_name(name)} seed {seed}",
                legendgroup=f"{name}{seed}", showlegend=col == 1,
                line=dict(color=COLORS.get(name), dash=DASHES[seed % len(DASHES)])),
                1, col)
    fig.update_xaxes(title="epoch")
    fig.update_yaxes(title="PSNR (dB)", col=1)
    rows = int(np.ceil(len(histories) / 4))  # the legend below the plots, four entries a row
    fig.update_layout(height=360 + 24 * rows, margin=dict(t=TITLE_ROOM, b=40 + 24 * rows),
                      legend=dict(orientation="h", yanchor="top", y=-0.18, xanchor="left", x=0))
    return fig


def epoch_lines(table: dict, metrics=("bta_psnr", "kta_psnr"), train_epochs: int = 0) -> go.Figure:
    """Table 2 as lines: each metric after every unlearning epoch, per method."""
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[m.upper().replace("_", " ")
                                                                   for m in metrics])
    for method, history in table.items():
        epochs = [train_epochs + h["epoch"] for h in history]
        for col, metric in enumerate(metrics, start=1):
            fig.add_trace(go.Scatter(x=epochs, y=[h["metrics"][metric] for h in history],
                                     mode="lines+markers", name=method, legendgroup=method,
                                     showlegend=col == 1, line=dict(color=COLORS.get(method))),
                          1, col)
    fig.update_xaxes(title="epoch", dtick=1)
    fig.update_yaxes(title="PSNR (dB)", col=1)
    fig.update_layout(height=360, margin=dict(t=TITLE_ROOM, b=40))
    return fig


def radar(rows: dict, axes=("UA", "BTA", "KTA", "1/RTE")) -> go.Figure:
    """Figure 3: one radar per method against the oracle; axes already scaled to [0, 1]. Rows
    are named by record ("oracle") or as readers see them (``paper.ORACLE``)."""
    rows = {display_name(n): values for n, values in rows.items()}
    names = [n for n in rows if n != ORACLE]
    cols = min(3, len(names))
    fig = make_subplots(rows=int(np.ceil(len(names) / cols)), cols=cols,
                        specs=[[{"type": "polar"}] * cols] * int(np.ceil(len(names) / cols)),
                        subplot_titles=names, vertical_spacing=0.16, horizontal_spacing=0.12)
    for i, name in enumerate(names):
        r, c = i // cols + 1, i % cols + 1
        for label, values, color in ((ORACLE, rows.get(ORACLE), COLORS["oracle"]),
                                     (name, rows[name], COLORS.get(name, "#333"))):
            if values is None:
                continue
            v = [values[a] for a in axes]
            fig.add_trace(go.Scatterpolar(r=v + v[:1], theta=list(axes) + [axes[0]], fill="toself",
                                          name=label, legendgroup=label,
                                          showlegend=i == 0 or label != ORACLE,
                                          line=dict(color=color), opacity=0.6), r, c)
    # the axis labels on the diagonals: level with the centre, one radar's "UA" ran into the
    # next one's "KTA", and the top label into the method's title
    fig.update_polars(radialaxis=dict(range=[0, 1], showticklabels=False),
                      angularaxis=dict(rotation=45, tickfont=dict(size=11)))
    fig.update_layout(height=330 * int(np.ceil(len(names) / cols)), margin=dict(t=TITLE_ROOM, b=20))
    return fig


def scatter_fit(points: dict, x_title: str, y_title: str, degree: int = 2) -> go.Figure:
    """Figure 5: y against x per method with a polynomial fit and its 95% confidence band."""
    from ..measures.fits import polyfit_band

    fig = go.Figure()
    for method, (xs, ys) in points.items():
        color = COLORS.get(method, "#333")
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name=method, legendgroup=method,
                                 marker=dict(color=color, size=9)))
        band = polyfit_band(np.asarray(xs, float), np.asarray(ys, float), degree)
        if band is None:
            continue
        grid, fit, lo, hi = band
        fig.add_trace(go.Scatter(x=np.r_[grid, grid[::-1]], y=np.r_[hi, lo[::-1]], fill="toself",
                                 line=dict(width=0), fillcolor=color, opacity=0.15,
                                 legendgroup=method, showlegend=False, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=grid, y=fit, mode="lines", line=dict(color=color),
                                 legendgroup=method, showlegend=False))
    fig.update_layout(xaxis_title=x_title, yaxis_title=y_title, height=420,
                      margin=dict(t=30, b=40))
    return fig


def lines(series: dict, x_title: str, y_title: str, log_x: bool = False, height=380,
          reference: dict | None = None) -> go.Figure:
    """Generic lines {name: (x, y)}; ``reference`` draws horizontal lines {label: y}."""
    fig = go.Figure()
    for name, (xs, ys) in series.items():
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=name,
                                 line=dict(color=COLORS.get(name.split(" ")[0]),
                                           dash="dash" if "KTA" in name else "solid")))
    for label, y in (reference or {}).items():
        fig.add_hline(y=y, line=dict(dash="dot", color="gray"), annotation_text=label)
    fig.update_layout(xaxis_title=x_title, yaxis_title=y_title, height=height,
                      margin=dict(t=30, b=40))
    if log_x:
        fig.update_xaxes(type="log")
    return fig


def overview() -> go.Figure:
    """Figure 2: retain / forget sets, oracle, original, unlearned model, drawn as shapes."""
    fig = go.Figure()
    boxes = {
        "retain set D_r<br>(brain AXT2)": (0.02, 0.62, 0.2, 0.9, "#cfe8dc"),
        "forget set D_f<br>(knee)": (0.02, 0.16, 0.2, 0.44, "#f6d5c1"),
        f"{ORACLE}<br>trained on D_r": (0.4, 0.72, 0.6, 0.95, "#1b9e77"),
        "original G<br>trained on D_r + D_f": (0.4, 0.32, 0.6, 0.58, "#d95f02"),
        "unlearned G^U<br>from G, with<br>D_f and D_r'": (0.78, 0.3, 0.98, 0.6, "#1f78b4"),
    }
    for text, (x0, y0, x1, y1, color) in boxes.items():
        fig.add_shape(type="rect", x0=x0, y0=y0, x1=x1, y1=y1, line=dict(color=color, width=2),
                      fillcolor=color, opacity=0.35)
        fig.add_annotation(x=(x0 + x1) / 2, y=(y0 + y1) / 2, text=text, showarrow=False,
                           font=dict(size=13))
    arrows = [((0.2, 0.8), (0.4, 0.84), "retraining (ideal, costly)"),
              ((0.2, 0.7), (0.4, 0.5), ""), ((0.2, 0.32), (0.4, 0.4), "training on all data"),
              ((0.6, 0.45), (0.78, 0.45), "unlearning (cheap)"),
              ((0.88, 0.6), (0.6, 0.84), "should match")]
    for (x0, y0), (x1, y1), label in arrows:
        fig.add_annotation(x=x1, y=y1, ax=x0, ay=y0, xref="x", yref="y", axref="x", ayref="y",
                           showarrow=True, arrowhead=3, arrowwidth=1.5, text="")
        if label:
            fig.add_annotation(x=(x0 + x1) / 2, y=(y0 + y1) / 2 + 0.04, text=f"<i>{label}</i>",
                               showarrow=False, font=dict(size=11, color="#555"))
    fig.add_annotation(x=0.5, y=0.04, showarrow=False, font=dict(size=12),
                       text="G hallucinates knee-like structure on brain images; "
                            "G^U should reconstruct like G-hat at a fraction of its cost")
    fig.update_xaxes(visible=False, range=[0, 1])
    fig.update_yaxes(visible=False, range=[0, 1])
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=10, b=10), plot_bgcolor="white")
    return fig


def loss_distributions(losses: dict, loss_title: str = "per-slice SSIM loss",
                       sets=("D_f", "D_ft")) -> go.Figure:
    """The forgetting audit's picture: for each model (one panel), the empirical cumulative
    distribution of its per-slice losses on each set. ``losses``: {model: {set: values}}.
    The Kolmogorov-Smirnov statistic between two sets is the largest vertical gap between
    their curves; a model that remembers D_f has its D_f curve left of (below in loss) its
    D_ft curve."""
    names = list(losses)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, shared_yaxes=True,
                        horizontal_spacing=0.04)
    styles = {sets[0]: dict(color="#d95f02"), sets[1]: dict(color="#1f78b4", dash="dash")}
    for col, name in enumerate(names, start=1):
        for label in sets:
            values = np.sort(np.asarray(losses[name][label], float))
            share = np.arange(len(values) + 1) / max(len(values), 1)
            values = np.r_[values[:1], values]  # the curve rises from 0 at the lowest loss
            fig.add_trace(go.Scatter(
                x=values, y=share, mode="lines", line_shape="hv", name=label,
                legendgroup=label, showlegend=col == 1, line=styles.get(label),
                hovertemplate=f"{name}, {label}: loss %{{x:.4f}}, share %{{y:.2f}}<extra></extra>"),
                1, col)
    fig.update_xaxes(title=loss_title)
    fig.update_yaxes(title="share of slices with a lower loss", range=[0, 1.02], col=1)
    fig.update_layout(height=420, margin=dict(t=TITLE_ROOM, b=90),
                      legend=dict(orientation="h", x=0.5, y=-0.22, yanchor="top",
                                  xanchor="center"))
    return fig


def frontiers(fronts: dict, paper_points: dict, targets=(0.5, 1.0), height=460) -> go.Figure:
    """Brain cost against the share of the knowledge gap removed, one line per method and
    seed (a method's seeds share its colour; hover names the knob value), the paper's points
    as stars, dashed verticals at the shares where methods are compared.

    Args:
        fronts: {method: {seed: points}}, points with ``knob``, ``share_removed``, ``bta_cost``.
        paper_points: {method: {"share_removed", "bta_cost"}} from the paper's Table 1.
    """
    fig = go.Figure()
    for method, by_seed in fronts.items():
        color = COLORS.get(method, "#999999")
        for i, (seed, points) in enumerate(sorted(by_seed.items())):
            points = sorted(points, key=lambda p: p["share_removed"])
            fig.add_trace(go.Scatter(
                x=[p["share_removed"] for p in points], y=[p["bta_cost"] for p in points],
                mode="lines+markers", name=method, legendgroup=method, showlegend=i == 0,
                line=dict(color=color, width=1.5), marker=dict(size=5), opacity=0.75,
                text=[f"{method}, seed {seed}, knob {p['knob']:g}" for p in points],
                hovertemplate="%{text}<br>share %{x:.2f}, cost %{y:.2f} dB<extra></extra>"))
    for method, p in paper_points.items():
        fig.add_trace(go.Scatter(
            x=[p["share_removed"]], y=[p["bta_cost"]], mode="markers", name=f"{method} (paper)",
            marker=dict(symbol="star", size=14, color=COLORS.get(method, "#999999"),
                        line=dict(color="black", width=1)),
            hovertemplate=f"{method} in the paper: share %{{x:.2f}}, cost %{{y:.2f}} dB"
                          "<extra></extra>"))
    for t in targets:
        fig.add_vline(x=t, line=dict(color="#888888", dash="dash", width=1))
    fig.update_layout(height=height, xaxis_title="share of the knowledge gap removed "
                      "(1 = down to the oracle's KTA)",
                      yaxis_title="BTA(G-hat) - BTA(M), dB (brain lost)",
                      legend=dict(orientation="v"), margin=dict(l=60, r=20, t=30, b=50))
    return fig


def per_example(scores: dict, fprs=(0.01, 0.05), height=440) -> go.Figure:
    """The per-example audit's picture. Left: each model's scores on its G's forget slices
    (log-likelihood ratio, above 0: looks like a member), the control first. Right: the
    attack's ROC, forget slices against knees the G never saw, on log axes so that the low
    false-positive rates an auditor cares about are visible (dotted: chance; dashed: ``fprs``).

    Args:
        scores: {model name: (member scores, non-member scores)}, seeds pooled.
    """
    from sklearn.metrics import roc_curve

    fig = make_subplots(rows=1, cols=2, column_widths=[0.55, 0.45], horizontal_spacing=0.1,
                        subplot_titles=("forget slices' scores (above 0: member)",
                                        "ROC, log axes"))
    floor = min(min(fprs), 1 / max(len(n) for _, n in scores.values())) / 2
    for name, (members, non_members) in scores.items():
        label, color = display_name(name), COLORS.get(display_name(name), "#999999")
        fig.add_trace(go.Box(y=members, name=label, marker_color=color, boxpoints="outliers",
                             showlegend=False, hovertemplate=f"{label}: %{{y:.2f}}<extra></extra>"),
                      1, 1)
        fpr, tpr, _ = roc_curve(np.r_[np.ones(len(members)), np.zeros(len(non_members))],
                                np.r_[members, non_members])
        fig.add_trace(go.Scatter(x=np.maximum(fpr, floor), y=np.maximum(tpr, floor), name=label,
                                 mode="lines", line=dict(color=color, width=1.5),
                                 line_shape="hv", hovertemplate=f"{label}: FPR %{{x:.3f}}, "
                                 "TPR %{y:.3f}<extra></extra>"), 1, 2)
    fig.add_hline(y=0, line=dict(color="#888888", dash="dot", width=1), row=1, col=1)
    fig.add_trace(go.Scatter(x=[floor, 1], y=[floor, 1], mode="lines", name="chance",
                             line=dict(color="#888888", dash="dot", width=1)), 1, 2)
    for f in fprs:
        fig.add_vline(x=f, line=dict(color="#bbbbbb", dash="dash", width=1), row=1, col=2)
    # the axis stops at the 10th percentile of all scores: a collapsed model's long tail
    # would otherwise squash every other box against zero
    every = np.concatenate([m for m, _ in scores.values()])
    low = float(np.percentile(every, 10)) if len(every) else -1.0
    fig.update_yaxes(title="log-likelihood ratio, in vs out (cut at the 10th percentile)",
                     range=[low, max(float(every.max()) if len(every) else 1.0, 0) + 2],
                     row=1, col=1)
    fig.update_xaxes(type="log", title="false-positive rate", range=[np.log10(floor), 0],
                     row=1, col=2)
    fig.update_yaxes(type="log", title="true-positive rate", range=[np.log10(floor), 0],
                     row=1, col=2)
    fig.update_layout(height=height, margin=dict(t=TITLE_ROOM, b=60),
                      legend=dict(orientation="v", x=1.02, y=1))
    return fig
