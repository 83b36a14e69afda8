"""Layout arithmetic of gui_utils (no window needed)."""

from gui_utils.layout import fit_image, wrap_lines


def test_small_images_get_the_largest_whole_zoom_centred():
    assert fit_image(32, 32, 400, 0, 880, 800) == (440, 0, 800, 800, 25.0)
    x, y, width, height, zoom = fit_image(36, 20, 0, 0, 100, 100)
    assert (zoom, width, height) == (2.0, 72, 40) and (x, y) == (14, 30)


def test_large_images_shrink_to_fit():
    x, y, width, height, zoom = fit_image(2000, 1000, 10, 20, 500, 500)
    assert zoom == 0.25 and (width, height) == (500, 250) and (x, y) == (10, 145)


def test_nothing_to_fit():
    assert fit_image(0, 0, 5, 6, 100, 100)[2:] == (0, 0, 0.0)
    assert fit_image(10, 10, 5, 6, 0, 100)[2:] == (0, 0, 0.0)


def test_wrap_lines():
    assert wrap_lines('aaa bbb ccc', 7, len) == ['aaa bbb', 'ccc']
    assert wrap_lines('one\ntwo three', 100, len) == ['one', 'two three']
    assert wrap_lines('averyveryverylongword x', 5, len) == ['averyveryverylongword', 'x']
    assert wrap_lines('', 5, len) == ['']
