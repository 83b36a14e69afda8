"""The interface of the visualizer's panels."""

import abc


class Widget(abc.ABC):
    """One collapsible panel: settings that feed the render request, drawn with ImGui.

    `panel_name` names the panel in command files, `script_fields` the settings they may change
    (`set PANEL.FIELD=VALUE`) with their types.
    """
    panel_name = ''
    title = ''
    script_fields = {}
    default_open = True

    def __init__(self, viz):
        self.viz = viz

    @property
    def visible(self):
        """False hides the panel (e.g. when the loaded network has nothing for it to do)."""
        return True

    def update(self, dt):
        """Called every frame, drawn or not (animations advance here); `dt` is the frame time in seconds."""

    @abc.abstractmethod
    def draw(self):
        """The panel's widgets, inside its expanded header."""

    def request_fields(self):
        """This panel's share of the RenderRequest, as keyword arguments."""
        return {}

    def state(self):
        """The script fields and their values (for write-state)."""
        return {field: getattr(self, field) for field in self.script_fields}
