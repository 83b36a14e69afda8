"""Large text drawn straight into an ImGui draw list: messages over an image view, wrapped and
centred on a dark backing box so they read on any picture."""

from imgui_bundle import imgui

from gui_utils.layout import wrap_lines


def rgba(r, g, b, a=1.0):
    """ImU32 colour from floats in [0, 1]."""
    return imgui.get_color_u32(imgui.ImVec4(r, g, b, a))


def draw_text_box(draw_list, text, x, y, width, height, font_size, color=(1.0, 1.0, 1.0, 1.0),
                  background=(0.0, 0.0, 0.0, 0.7), padding=None):
    """Draws `text` wrapped to the rectangle (x, y, width, height), centred in it; returns the box drawn."""
    font = imgui.get_font()
    padding = font_size * 0.5 if padding is None else padding
    max_width = max(width - 4 * padding, font_size)
    imgui.push_font(None, font_size)  # Measures at the size drawn.
    try:
        lines = wrap_lines(text, max_width, lambda s: imgui.calc_text_size(s).x)
        widths = [imgui.calc_text_size(line).x for line in lines]
    finally:
        imgui.pop_font()
    line_height = font_size * 1.2
    text_width = max(widths, default=0.0)
    text_height = line_height * len(lines)
    box_x0 = x + (width - text_width) / 2 - padding
    box_y0 = y + (height - text_height) / 2 - padding
    box_x1 = box_x0 + text_width + 2 * padding
    box_y1 = box_y0 + text_height + 2 * padding
    draw_list.add_rect_filled((box_x0, box_y0), (box_x1, box_y1), rgba(*background), padding * 0.5)
    for idx, (line, line_width) in enumerate(zip(lines, widths)):
        line_x = x + (width - line_width) / 2
        draw_list.add_text(font, font_size, (line_x, box_y0 + padding + idx * line_height), rgba(*color), line)
    return (box_x0, box_y0, box_x1 - box_x0, box_y1 - box_y0)
