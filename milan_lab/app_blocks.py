"""The explorer's building blocks that every tab shares (``app.py`` and the tabs in their own modules).

An output image is shown with its title above it and its caption under it, as Markdown: the image's own
floating label is hidden, since at 1280 px and narrower it covered the picture and clipped long titles
("your mask: click a patc..."). ``app.py``'s ``APP_CSS`` styles the ``panel-title`` and ``panel-caption``
classes.
"""
from milan_lab.config import ModelConfig, option_of
from milan_lab.errors import MilanLabError

# the mask-ratio sliders' ends: the config's range for mask_ratio, in the sliders' steps of 0.05
MASK_RATIOS = option_of(ModelConfig, "mask_ratio").span(0.05)


def guard_image(empty: tuple, user_error):
    """Decorator for a handler whose first input is the image: a user's bad input (a ``MilanLabError``)
    becomes one clear message through ``user_error``; no image (the image was cleared) gives the ``empty``
    outputs quietly (one value when there is one output), and the page's one hint says what to do."""
    def wrap(fn):
        def wrapped(image, *args):
            if image is None:
                return empty if len(empty) > 1 else empty[0]
            try:
                return fn(image, *args)
            except MilanLabError as e:
                raise user_error(str(e)) from None
        wrapped.__name__ = fn.__name__
        return wrapped
    return wrap


def titled_image(title: str, elem_id: str, caption: str, min_width: int = 200, buttons=("download", "fullscreen")):
    """One output image (``elem_id``) in its own column, its ``title`` above (bold unless it is already
    Markdown-bold) and its ``caption`` under it (``elem_id``-title and -caption). Returns (image, title
    Markdown), the title to be updated when what the image shows changes. Call inside a ``gr.Row``."""
    import gradio as gr
    with gr.Column(min_width=min_width):
        head = gr.Markdown(title if title.startswith("**") else f"**{title}**", elem_classes="panel-title",
                           elem_id=f"{elem_id}-title")
        img = gr.Image(label=title.strip("*"), show_label=False, elem_id=elem_id, format="png", interactive=False,
                       buttons=list(buttons))
        gr.Markdown(caption, elem_classes="panel-caption", elem_id=f"{elem_id}-caption")
    return img, head
