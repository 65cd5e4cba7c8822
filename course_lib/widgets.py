"""Lessons 02, 03, 06, 13: interactive explorers (ipywidgets) that also leave a static figure for nbval and web pages.

Only notebooks import this module (the UI layer); the figures it draws live in `course_lib.plots`.
"""

from __future__ import annotations

from collections.abc import Callable

import matplotlib.pyplot as plt

from course_lib.plots import AttentionRecord, attention_figure


def attention_explorer(records: list[AttentionRecord], *, static: bool = True):
    """Dropdowns for the example and the kind of attention, sliders for layer and head.

    With `static=True` the first example's cross-attention (every layer and head) is drawn first as
    an ordinary figure, so a page without a live kernel (nbval, a rendered notebook) still shows it.
    """
    import ipywidgets as widgets
    from IPython.display import display

    if not records:
        raise ValueError("attention_explorer needs at least one AttentionRecord")
    kinds = list(records[0].maps)
    if static:
        kind = "cross" if "cross" in kinds else kinds[0]
        attention_figure(records[0], kind)
        plt.show()
    layers, heads = records[0].maps[kinds[0]][0].shape[:2]
    example = widgets.Dropdown(options=[(r.title, i) for i, r in enumerate(records)], description="example")
    kind = widgets.ToggleButtons(options=kinds, description="attention")
    layer = widgets.IntSlider(0, 0, layers - 1, description="layer")
    head = widgets.IntSlider(0, 0, heads - 1, description="head")
    out = widgets.Output()

    def redraw(*_) -> None:
        with out:
            out.clear_output(wait=True)
            attention_figure(records[example.value], kind.value, layer.value, head.value)
            plt.show()

    for w in (example, kind, layer, head):
        w.observe(redraw, names="value")
    redraw()
    box = widgets.VBox([widgets.HBox([example, kind]), widgets.HBox([layer, head]), out])
    display(box)
    return box


def sampling_explorer(sample: Callable[[float, int, float, int], str], *, static: bool = True):
    """Sliders for temperature, top-k (0 = off), top-p and the seed that call `sample(temperature, top_k, top_p, seed)`
    and show the text it returns; with `static=True` one sample at the default settings is printed first."""
    import ipywidgets as widgets
    from IPython.display import display

    if static:
        print(sample(0.8, 0, 0.95, 0))
    temperature = widgets.FloatSlider(0.8, min=0.1, max=2.0, step=0.05, description="temperature")
    top_k = widgets.IntSlider(0, min=0, max=84, description="top-k (0 off)")
    top_p = widgets.FloatSlider(0.95, min=0.05, max=1.0, step=0.05, description="top-p")
    seed = widgets.IntSlider(0, min=0, max=20, description="seed")
    out = widgets.Output(layout={"border": "1px solid #ccc"})

    def redraw(*_) -> None:
        with out:
            out.clear_output(wait=True)
            print(sample(temperature.value, top_k.value, top_p.value, seed.value))

    for w in (temperature, top_k, top_p, seed):
        w.observe(redraw, names="value")
    box = widgets.VBox([widgets.HBox([temperature, top_k]), widgets.HBox([top_p, seed]), out])
    display(box)
    return box


def prompt_box(draw: Callable[[str, float, int], None], prompt: str, *, static: bool = True):
    """A caption box, a guidance slider and a seed that call `draw(caption, guidance, seed)` (which shows
    samples, or prints why the caption cannot be drawn). With `static=True` the default prompt's samples are
    drawn first, so a page without a kernel still shows them. The caption is drawn when Enter is pressed."""
    import ipywidgets as widgets
    from IPython.display import display

    if static:
        draw(prompt, 3.0, 0)
    text = widgets.Text(prompt, description="caption", continuous_update=False, layout={"width": "420px"})
    guidance = widgets.FloatSlider(3.0, min=0.0, max=8.0, step=0.5, description="guidance")
    seed = widgets.IntSlider(0, min=0, max=20, description="seed")
    out = widgets.Output()

    def redraw(*_) -> None:
        with out:
            out.clear_output(wait=True)
            draw(text.value, guidance.value, seed.value)

    for w in (text, guidance, seed):
        w.observe(redraw, names="value")
    box = widgets.VBox([text, widgets.HBox([guidance, seed]), out])
    display(box)
    return box
