"""What the explorer's panels draw into their images: colour bars, class outlines, the cosine range."""
import numpy as np
import torch

from milan_lab.viz import maps, scales


def test_a_colour_bar_goes_from_the_colour_of_lo_to_that_of_hi():
    from matplotlib import colormaps
    strip = scales.colour_scale(256, 0.01, 0.2, "inferno", "attention weight")
    assert strip.shape[1] == 256 and strip.dtype == np.uint8
    y = scales.PAD + scales.BAR_HEIGHT // 2
    left, right = strip[y, scales.PAD].astype(int), strip[y, 256 - scales.PAD - 1].astype(int)
    lo, hi = (np.array(colormaps["inferno"](v)[:3]) * 255 for v in (0.0, 1.0))
    assert np.abs(left - lo).max() <= 2 and np.abs(right - hi).max() <= 2
    text = strip[scales.PAD + scales.BAR_HEIGHT + 2:]
    assert (text < 128).any(axis=-1)[:, :60].any() and (text < 128).any(axis=-1)[:, -60:].any()  # both values written


def test_with_scale_keeps_the_image_and_adds_the_strip_under_it():
    img = np.random.default_rng(0).random((64, 64, 3))
    out = scales.with_scale(img, -1, 1, "viridis", "a label far too long to fit between the two numbers at all")
    assert out.dtype == np.uint8 and out.shape[1] == 64 and out.shape[0] > 64
    assert np.array_equal(out[:64], maps.to_uint8(img))


def test_outlines_colour_the_border_inside_the_region_and_leave_its_inside_alone():
    image = np.full((64, 64, 3), 0.5)
    labels = np.zeros((16, 16), dtype=np.int64)
    labels[4:12, 4:12] = 3  # a 32x32 px square at (16..47) once upsampled x4
    out = maps.label_outlines(image, labels, 9, width=3)
    colour = maps.class_colours(9)[3]
    assert np.allclose(out[16, 30], colour) and np.allclose(out[18, 30], colour)  # the band: 3 px inside
    assert np.allclose(out[15, 30], 0) and np.allclose(out[19, 30], 0)           # black on either side
    assert np.allclose(out[30, 30], 0.5) and np.allclose(out[5, 5], 0.5)         # inside and outside untouched
    same = np.tile(colour, (64, 64, 1))                                          # an object of the class's colour
    assert np.allclose(maps.label_outlines(same, labels, 9)[15, 30], 0)           # still shows, by its black edge


def test_the_cosine_map_spans_the_range_it_is_given():
    cos = torch.tensor([0.9, 0.95, 1.0, 0.9])
    mask = torch.ones(4)  # all masked: no hatching
    full = maps.cosine_image(cos, mask, 8)
    narrow = maps.cosine_image(cos, mask, 8, vmin=0.9, vmax=1.0)
    assert np.allclose(full[0, 0], full[0, 4], atol=0.1)       # on [-1, 1], 0.9 and 0.95 look alike
    assert np.abs(narrow[0, 0] - narrow[0, 4]).sum() > 0.3     # on [0.9, 1] they do not


def test_text_maps_put_each_prompt_over_its_own_column():
    from milan_lab.viz.text_maps import text_maps_figure
    sim = torch.rand(3, 64)
    img = text_maps_figure(["a star", "a purple triangle on the left", "a ring"], sim, sim, sim)
    assert img.ndim == 3 and img.shape[1] > img.shape[0]  # wide and short: prompts side by side


def test_the_segmentation_figure_has_a_legend_of_its_classes():
    from milan_lab.data.scenes import SEG_CLASSES
    from milan_lab.data.segmentation import SegScenes
    from milan_lab.evaluation.dense import SegProbe
    from milan_lab.viz.figures import segmentation_figure

    class Encoder(torch.nn.Module):
        def forward_features(self, x):  # [N, 1 + 64, 8]: an 8x8 grid of patch tokens
            return torch.zeros(x.shape[0], 65, 8)
    dataset = SegScenes("val", 2, 32)
    fig = segmentation_figure({"stub": Encoder()}, {"stub": SegProbe(8, len(SEG_CLASSES), 32)}, dataset, 2)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == list(SEG_CLASSES)[1:]  # every class but the background
