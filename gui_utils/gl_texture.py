"""OpenGL textures from NumPy images, drawn as screen rectangles with a tiny shader of our own.

Magnified textures use nearest sampling, so at a whole zoom factor each screen pixel shows an
image pixel's exact value (the GUI's own image widget filters linearly); shrunk ones are mipmapped.
Needs a current OpenGL 3.3 core context.
"""

import numpy as np
from OpenGL import GL
from OpenGL.GL import shaders

_VERTEX_SHADER = """
#version 330 core
uniform vec4 rect;  // x0, y0, x1, y1 in normalised device coordinates
out vec2 uv;
void main() {
    // Four vertices of a triangle strip from gl_VertexID: no vertex buffer needed.
    vec2 corner = vec2(float(gl_VertexID & 1), float(gl_VertexID >> 1));
    uv = corner;
    gl_Position = vec4(mix(rect.xy, rect.zw, corner), 0.0, 1.0);
}
"""

_FRAGMENT_SHADER = """
#version 330 core
uniform sampler2D image;
uniform bool grey;  // One-channel textures: show the red channel as grey.
in vec2 uv;
out vec4 color;
void main() {
    vec4 texel = texture(image, uv);
    color = grey ? vec4(texel.rrr, 1.0) : vec4(texel.rgb, 1.0);
}
"""

_FORMATS = {1: GL.GL_RED, 3: GL.GL_RGB, 4: GL.GL_RGBA}
_INTERNAL_FORMATS = {1: GL.GL_R8, 3: GL.GL_RGB8, 4: GL.GL_RGBA8}


class QuadProgram:
    """The shader program that draws a texture into a rectangle; one per OpenGL context."""

    def __init__(self):
        self.program = shaders.compileProgram(
            shaders.compileShader(_VERTEX_SHADER, GL.GL_VERTEX_SHADER),
            shaders.compileShader(_FRAGMENT_SHADER, GL.GL_FRAGMENT_SHADER))
        self.vertex_array = GL.glGenVertexArrays(1)  # Core profiles draw nothing without a bound one.
        self._rect = GL.glGetUniformLocation(self.program, 'rect')
        self._image = GL.glGetUniformLocation(self.program, 'image')
        self._grey = GL.glGetUniformLocation(self.program, 'grey')

    def draw(self, texture, x, y, width, height, framebuffer_width, framebuffer_height):
        """Draws `texture` at (x, y, width, height) in framebuffer pixels, origin top left."""
        x0 = 2 * x / framebuffer_width - 1
        x1 = 2 * (x + width) / framebuffer_width - 1
        y0 = 1 - 2 * y / framebuffer_height
        y1 = 1 - 2 * (y + height) / framebuffer_height
        GL.glUseProgram(self.program)
        GL.glBindVertexArray(self.vertex_array)
        GL.glActiveTexture(GL.GL_TEXTURE0)
        GL.glBindTexture(GL.GL_TEXTURE_2D, texture.gl_id)
        GL.glUniform1i(self._image, 0)
        GL.glUniform1i(self._grey, int(texture.channels == 1))
        GL.glUniform4f(self._rect, x0, y0, x1, y1)
        GL.glDisable(GL.GL_BLEND)
        GL.glDrawArrays(GL.GL_TRIANGLE_STRIP, 0, 4)
        GL.glBindVertexArray(0)
        GL.glUseProgram(0)

    def delete(self):
        GL.glDeleteVertexArrays(1, [self.vertex_array])
        GL.glDeleteProgram(self.program)


class Texture:
    """A 2-D texture holding a uint8 [H, W, C] image (C = 1, 3 or 4); `upload` replaces the contents."""

    def __init__(self, image=None):
        self.gl_id = GL.glGenTextures(1)
        self.width = self.height = self.channels = 0
        if image is not None:
            self.upload(image)

    def upload(self, image):
        image = np.ascontiguousarray(image)
        if image.ndim == 2:
            image = image[:, :, np.newaxis]
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in _FORMATS:
            raise ValueError(f'expected a uint8 [H, W, 1|3|4] image, got {image.dtype} {list(image.shape)}')
        height, width, channels = image.shape
        GL.glBindTexture(GL.GL_TEXTURE_2D, self.gl_id)
        GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 1)  # Rows of odd widths are not 4-byte aligned.
        if (width, height, channels) == (self.width, self.height, self.channels):
            GL.glTexSubImage2D(GL.GL_TEXTURE_2D, 0, 0, 0, width, height, _FORMATS[channels], GL.GL_UNSIGNED_BYTE, image)
        else:
            GL.glTexImage2D(GL.GL_TEXTURE_2D, 0, _INTERNAL_FORMATS[channels], width, height, 0, _FORMATS[channels],
                            GL.GL_UNSIGNED_BYTE, image)
            GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MAG_FILTER, GL.GL_NEAREST)
            GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MIN_FILTER, GL.GL_LINEAR_MIPMAP_LINEAR)
            GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_WRAP_S, GL.GL_CLAMP_TO_EDGE)
            GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_WRAP_T, GL.GL_CLAMP_TO_EDGE)
            self.width, self.height, self.channels = width, height, channels
        GL.glGenerateMipmap(GL.GL_TEXTURE_2D)
        GL.glBindTexture(GL.GL_TEXTURE_2D, 0)

    def delete(self):
        if self.gl_id:
            GL.glDeleteTextures(1, [self.gl_id])
            self.gl_id = 0


def read_framebuffer(width, height):
    """The back buffer as a uint8 [height, width, 3] array, top row first (call before swapping)."""
    GL.glReadBuffer(GL.GL_BACK)
    GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 1)
    data = GL.glReadPixels(0, 0, width, height, GL.GL_RGB, GL.GL_UNSIGNED_BYTE)
    return np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3)[::-1].copy()
