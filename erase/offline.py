"""Placeholder: the book-infrastructure work replaces this with the offline plotly renderer."""


def enable() -> None:
    import plotly.io as pio

    pio.renderers.default = "notebook"
