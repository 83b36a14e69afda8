"""Command files that drive the visualizer (visualizer.py --script=FILE): reproducible screenshots,
demos and tests. One command a line, '#' starts a comment:

    load PKL                      load a network pickle (path or URL)
    set PANEL.FIELD=VALUE ...     change panel settings, e.g. set latent.seed=3 trunc.psi=0.7
    wait                          until the image of the current settings is on screen (or its error)
    frames N                      let N frames pass (e.g. while something animates)
    drag DX DY                    drag the mouse across the image view by DX, DY pixels
    save-image PATH               the shown image at its own resolution, as PNG
    save-window PATH              the whole window, as PNG
    write-state PATH              settings, network, layers, errors and view geometry, as JSON
    quit                          close the window (the exit status is 0)

Relative paths are relative to --capture-dir. Without `quit` the window stays open at the end.
"""

import dataclasses
import shlex
import time

# How long `wait` waits for one image before the script fails: far beyond any tiny network's
# render time, short enough that a hung render does not keep a test run busy for long.
WAIT_TIMEOUT_SECONDS = 600

COMMAND_ARGUMENTS = {  # name -> number of arguments (None: one or more)
    'load': 1, 'set': None, 'wait': 0, 'frames': 1, 'drag': 2,
    'save-image': 1, 'save-window': 1, 'write-state': 1, 'quit': 0,
}

DRAG_STEPS = 8  # Mouse moves of one drag, one per frame, as a hand would make them.


class ScriptError(ValueError):
    """A command file that cannot run; the message names the line."""


@dataclasses.dataclass(frozen=True)
class Command:
    line: int
    name: str
    args: tuple


def convert_value(text, kind):
    """The script text of a field value as `kind` (bool, int, float or str)."""
    if kind is bool:
        lowered = text.lower()
        if lowered in ('1', 'true', 'on', 'yes'):
            return True
        if lowered in ('0', 'false', 'off', 'no'):
            return False
        raise ValueError(f'{text!r} is not a boolean (use 1/0, true/false or on/off)')
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f'{text!r} is not an integer') from None
    if kind is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f'{text!r} is not a number') from None
    return text


def parse_script(text, fields):
    """[Command] of a command file; `fields` maps panel name -> {field name: type}. Raises ScriptError."""
    commands = []
    for line_no, raw in enumerate(text.splitlines(), start=1):
        try:
            tokens = shlex.split(raw, comments=True)
        except ValueError as e:
            raise ScriptError(f'line {line_no}: {e}') from None
        if not tokens:
            continue
        name, args = tokens[0], tokens[1:]
        if name not in COMMAND_ARGUMENTS:
            raise ScriptError(f'line {line_no}: unknown command {name!r} (commands: {", ".join(COMMAND_ARGUMENTS)})')
        expected = COMMAND_ARGUMENTS[name]
        if expected is None and not args:
            raise ScriptError(f'line {line_no}: {name} needs at least one PANEL.FIELD=VALUE')
        if expected is not None and len(args) != expected:
            raise ScriptError(f'line {line_no}: {name} takes {expected} argument(s), got {len(args)}')
        try:
            commands.append(Command(line_no, name, _convert_args(name, args, fields)))
        except ValueError as e:
            raise ScriptError(f'line {line_no}: {e}') from None
    return commands


def _convert_args(name, args, fields):
    if name == 'frames':
        count = convert_value(args[0], int)
        if count < 1:
            raise ValueError('frames needs a count of 1 or more')
        return (count,)
    if name == 'drag':
        return tuple(convert_value(arg, float) for arg in args)
    if name != 'set':
        return tuple(args)
    assignments = []
    for arg in args:
        key, sep, value = arg.partition('=')
        panel, dot, field = key.partition('.')
        if not sep or not dot:
            raise ValueError(f'{arg!r} is not of the form PANEL.FIELD=VALUE')
        if panel not in fields:
            raise ValueError(f'unknown panel {panel!r} (panels: {", ".join(fields)})')
        if field not in fields[panel]:
            raise ValueError(f'panel {panel} has no field {field!r} (fields: {", ".join(fields[panel])})')
        assignments.append((panel, field, convert_value(value, fields[panel][field])))
    return tuple(assignments)


# What running a command did.
_DONE = 'done'                  # Go on with the next command in this frame.
_DONE_NEXT_FRAME = 'next'       # Go on next frame: the change shows only when the next frame is built.
_AGAIN = 'again'                # Not done: run this command again next frame.


class ScriptRunner:
    """Runs commands against a visualizer, a few per frame; `step` is called once a frame after drawing.

    The visualizer provides: set_field(panel, field, value), load_pickle(pkl), image_is_current(),
    view_center(), add_mouse_event(x, y, down), resolve_path(path), save_image(path),
    save_window(path), write_state(path) and request_close().
    """

    def __init__(self, commands, clock=time.monotonic):
        self.commands = list(commands)
        self.clock = clock
        self.position = 0
        self._frames_left = None
        self._wait_started = None
        self._drag_events = None

    @property
    def finished(self):
        return self.position >= len(self.commands)

    def step(self, viz):
        """Runs commands until one needs another frame. Raises ScriptError for a command that fails."""
        while not self.finished:
            outcome = self._run(self.commands[self.position], viz)
            if outcome == _AGAIN:
                return
            self.position += 1
            if outcome == _DONE_NEXT_FRAME:
                return

    def _run(self, command, viz):
        name, args = command.name, command.args
        if name == 'set':
            for panel, field, value in args:
                viz.set_field(panel, field, value)
            return _DONE_NEXT_FRAME
        if name == 'load':
            viz.load_pickle(args[0])
            return _DONE_NEXT_FRAME
        if name == 'wait':
            return self._wait(command, viz)
        if name == 'frames':
            self._frames_left = args[0] if self._frames_left is None else self._frames_left - 1
            if self._frames_left > 1:
                return _AGAIN
            self._frames_left = None
            return _DONE_NEXT_FRAME
        if name == 'drag':
            return self._drag(args, viz)
        try:
            if name == 'save-image':
                viz.save_image(viz.resolve_path(args[0]))
            elif name == 'save-window':
                viz.save_window(viz.resolve_path(args[0]))
            elif name == 'write-state':
                viz.write_state(viz.resolve_path(args[0]))
            elif name == 'quit':
                viz.request_close()
                return _DONE_NEXT_FRAME
        except (OSError, ValueError) as e:
            raise ScriptError(f'line {command.line}: {name} failed: {e}') from None
        return _DONE

    def _wait(self, command, viz):
        if self._wait_started is None:
            self._wait_started = self.clock()
        if viz.image_is_current():
            self._wait_started = None
            return _DONE
        if self.clock() - self._wait_started > WAIT_TIMEOUT_SECONDS:
            raise ScriptError(f'line {command.line}: no image for the current settings after '
                              f'{WAIT_TIMEOUT_SECONDS} s')
        return _AGAIN

    def _drag(self, args, viz):
        if self._drag_events is None:
            dx, dy = args
            x0, y0 = viz.view_center()
            moves = [(x0 + dx * i / DRAG_STEPS, y0 + dy * i / DRAG_STEPS, True) for i in range(1, DRAG_STEPS + 1)]
            self._drag_events = [(x0, y0, False), (x0, y0, True)] + moves + [(x0 + dx, y0 + dy, False)]
        viz.add_mouse_event(*self._drag_events.pop(0))
        if self._drag_events:
            return _AGAIN
        self._drag_events = None
        return _DONE_NEXT_FRAME
