"""Command files of visualizer.py --script: parsing, errors, and the runner's pacing (with a stand-in window)."""

import pytest

from viz import script as viz_script
from viz.script import ScriptError, ScriptRunner, parse_script

FIELDS = {'latent': {'seed': float, 'animate': bool, 'class_idx': int}, 'layer': {'name': str}}


def test_parse_commands_and_values():
    commands = parse_script('# a comment\n\nload "my net.pkl"\nset latent.seed=3.5 latent.animate=on layer.name=b8[1]\n'
                            'wait  # trailing comment\nframes 3\ndrag 10 -2.5\nsave-window a.png\nquit\n', FIELDS)
    assert [(c.line, c.name) for c in commands] == [(3, 'load'), (4, 'set'), (5, 'wait'), (6, 'frames'), (7, 'drag'),
                                                     (8, 'save-window'), (9, 'quit')]
    assert commands[0].args == ('my net.pkl',)
    assert commands[1].args == (('latent', 'seed', 3.5), ('latent', 'animate', True), ('layer', 'name', 'b8[1]'))
    assert commands[3].args == (3,) and commands[4].args == (10.0, -2.5)


@pytest.mark.parametrize('text, message', [
    ('jump 3', "line 1: unknown command 'jump'"),
    ('wait 3', 'wait takes 0 argument(s), got 1'),
    ('set', 'set needs at least one'),
    ('set latent.seed', 'is not of the form PANEL.FIELD=VALUE'),
    ('set camera.zoom=2', "unknown panel 'camera'"),
    ('set latent.zoom=2', "panel latent has no field 'zoom'"),
    ('set latent.seed=three', "'three' is not a number"),
    ('set latent.class_idx=1.5', "'1.5' is not an integer"),
    ('set latent.animate=maybe', 'is not a boolean'),
    ('frames 0', 'frames needs a count of 1 or more'),
    ('load "unclosed', 'line 1: No closing quotation'),
])
def test_parse_errors_name_the_line(text, message):
    with pytest.raises(ScriptError, match='^line 1: ') as info:
        parse_script(text, FIELDS)
    assert message in str(info.value)


class StandInViz:
    """Records what the runner asks of the visualizer; `current` says whether the shown image is up to date."""

    def __init__(self):
        self.calls = []
        self.current = False

    def set_field(self, panel, field, value):
        self.calls.append(('set', panel, field, value))

    def load_pickle(self, pkl):
        self.calls.append(('load', pkl))

    def image_is_current(self):
        return self.current

    def view_center(self):
        return (100.0, 50.0)

    def add_mouse_event(self, x, y, down):
        self.calls.append(('mouse', x, y, down))

    def resolve_path(self, path):
        return f'/captures/{path}'

    def save_image(self, path):
        self.calls.append(('save-image', path))

    def save_window(self, path):
        if 'full' in path:
            raise OSError('No space left on device')
        self.calls.append(('save-window', path))

    def write_state(self, path):
        self.calls.append(('write-state', path))

    def request_close(self):
        self.calls.append(('close',))


def _frames(runner, viz, count):
    for _ in range(count):
        runner.step(viz)


def test_settings_take_a_frame_and_wait_waits_for_the_image():
    viz = StandInViz()
    runner = ScriptRunner(parse_script('set latent.seed=2\nwait\nsave-image a.png\nwrite-state s.json\nquit', FIELDS))
    runner.step(viz)
    assert viz.calls == [('set', 'latent', 'seed', 2.0)]  # Nothing else this frame: the request is not rebuilt yet.
    _frames(runner, viz, 3)
    assert len(viz.calls) == 1 and not runner.finished  # Waiting for the image.
    viz.current = True
    runner.step(viz)
    assert viz.calls[1:] == [('save-image', '/captures/a.png'), ('write-state', '/captures/s.json'), ('close',)]
    assert runner.finished


def test_frames_counts_frames():
    viz = StandInViz()
    runner = ScriptRunner(parse_script('frames 3\nsave-image a.png', FIELDS))
    _frames(runner, viz, 3)
    assert viz.calls == []
    runner.step(viz)
    assert viz.calls == [('save-image', '/captures/a.png')]


def test_drag_presses_moves_and_releases():
    viz = StandInViz()
    runner = ScriptRunner(parse_script('drag 80 -8', FIELDS))
    _frames(runner, viz, viz_script.DRAG_STEPS + 3)
    assert runner.finished
    events = [call[1:] for call in viz.calls]
    assert events[0] == (100.0, 50.0, False) and events[1] == (100.0, 50.0, True)
    assert events[-1] == (180.0, 42.0, False) and events[-2] == (180.0, 42.0, True)
    assert len(events) == viz_script.DRAG_STEPS + 3 and all(down for _, _, down in events[1:-1])


def test_wait_gives_up_and_failures_name_the_line():
    clock = [0.0]
    runner = ScriptRunner(parse_script('wait', FIELDS), clock=lambda: clock[0])
    viz = StandInViz()
    runner.step(viz)
    clock[0] = viz_script.WAIT_TIMEOUT_SECONDS + 1
    with pytest.raises(ScriptError, match='line 1: no image for the current settings'):
        runner.step(viz)

    runner = ScriptRunner(parse_script('\nsave-window full.png', FIELDS))
    with pytest.raises(ScriptError, match='line 2: save-window failed: No space left on device'):
        runner.step(viz)
