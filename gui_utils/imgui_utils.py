"""Helpers that shorten common Dear ImGui patterns (imgui-bundle's Python API)."""

import contextlib

from imgui_bundle import imgui


@contextlib.contextmanager
def disabled(flag=True):
    """Greys out and deactivates the widgets inside when `flag` is true."""
    imgui.begin_disabled(bool(flag))
    try:
        yield
    finally:
        imgui.end_disabled()


@contextlib.contextmanager
def item_width(width):
    imgui.push_item_width(width)
    try:
        yield
    finally:
        imgui.pop_item_width()


@contextlib.contextmanager
def scoped_id(name):
    """Lets several panels use the same widget labels."""
    imgui.push_id(name)
    try:
        yield
    finally:
        imgui.pop_id()


def tooltip(text):
    """Shows `text` when the previous widget is hovered (also when it is disabled)."""
    if imgui.is_item_hovered(imgui.HoveredFlags_.allow_when_disabled):
        imgui.set_tooltip(text)


def button(label, enabled=True, width=0.0):
    """A button that returns False, greyed out, while not `enabled`."""
    with disabled(not enabled):
        return imgui.button(label, (width, 0.0)) and enabled


def error_text(text):
    """Wrapped text in the error colour."""
    imgui.push_style_color(imgui.Col_.text, imgui.ImVec4(1.0, 0.45, 0.40, 1.0))
    imgui.text_wrapped(text)
    imgui.pop_style_color()


def dim_text(text):
    """Wrapped text in the muted colour, for hints."""
    imgui.push_style_color(imgui.Col_.text, imgui.get_style().color_(imgui.Col_.text_disabled))
    imgui.text_wrapped(text)
    imgui.pop_style_color()


def combo(label, value, choices):
    """A combo box over a list of strings; returns (changed, chosen string)."""
    index = choices.index(value) if value in choices else 0
    changed, index = imgui.combo(label, index, list(choices))
    return changed, choices[index]


def format_number(value):
    """Shortest exact-looking text of a number: 3, 3.5, 4294967295 (no exponent)."""
    if float(value).is_integer():
        return str(int(value))
    return f'{value:.6f}'.rstrip('0').rstrip('.')


def number_input(label, value, kind=float, min_value=None, max_value=None):
    """A text field for a number of any size (ImGui's own number fields are 32-bit).

    The typed text applies when the field loses focus or Enter is pressed; text that is not a number
    of `kind` is dropped. Returns (changed, value), clamped to [min_value, max_value].
    """
    _, text = imgui.input_text(label, format_number(value), imgui.InputTextFlags_.chars_decimal)
    if not imgui.is_item_deactivated_after_edit():
        return False, value
    try:
        number = float(text) if kind is float else int(text) if text.strip().lstrip('-').isdigit() else int(float(text))
    except ValueError:
        return False, value
    if min_value is not None:
        number = max(number, min_value)
    if max_value is not None:
        number = min(number, max_value)
    return number != value, number


def slider_float(label, value, v_min, v_max, fmt='%.3f', flags=0):
    """imgui.slider_float that returns `value` itself unless the user moved the slider.

    ImGui works in float32: handing back its value every frame would turn e.g. 0.7 into 0.699999988.
    """
    changed, new_value = imgui.slider_float(label, value, v_min, v_max, fmt, flags)
    return new_value if changed else value


def drag_float2(label, values, speed, v_min, v_max, fmt='%.3f'):
    """imgui.drag_float2 over a pair, returning the pair itself unless the user dragged (see slider_float)."""
    changed, new_values = imgui.drag_float2(label, list(values), speed, v_min, v_max, fmt)
    return tuple(new_values) if changed else tuple(values)
