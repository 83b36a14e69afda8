"""Layout arithmetic with no GUI library involved (so it is testable anywhere)."""

import math


def fit_image(image_width, image_height, area_x, area_y, area_width, area_height):
    """Where to draw an image in an area: (x, y, width, height, zoom), centred, on whole pixels.

    Images that fit are magnified by the largest whole factor, so every image pixel covers the same
    number of screen pixels; larger ones are shrunk by the factor that makes them fit.
    """
    if image_width <= 0 or image_height <= 0 or area_width <= 0 or area_height <= 0:
        return (area_x, area_y, 0, 0, 0.0)
    fit = min(area_width / image_width, area_height / image_height)
    zoom = float(math.floor(fit)) if fit >= 1 else fit
    width = max(1, int(round(image_width * zoom)))
    height = max(1, int(round(image_height * zoom)))
    x = area_x + (area_width - width) // 2
    y = area_y + (area_height - height) // 2
    return (int(x), int(y), width, height, zoom)


def wrap_lines(text, max_width, measure):
    """Greedy word wrap: the lines of `text` (paragraphs split on newlines) no wider than `max_width`
    where possible; `measure(str) -> width`. A single word wider than the limit gets a line of its own."""
    lines = []
    for paragraph in text.split('\n'):
        line = ''
        for word in paragraph.split(' '):
            candidate = f'{line} {word}' if line else word
            if line and measure(candidate) > max_width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines
