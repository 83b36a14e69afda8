"""Interactive explorer of generator networks (StyleGAN2, StyleGAN3, CREPS, StyleGAN-T), e.g.

    python visualizer.py stylegan3-r-afhqv2-512x512.pkl network-snapshot-005000.pkl
    python visualizer.py --browse-dir=training-runs --capture-dir=captures

A window with panels on the left (pickle, latent with the class or text prompt, style mixing,
truncation and noise, equivariance, layers and their spectra, performance, capture) and the image
on the right. Rendering runs on a background thread, so the window stays responsive while a large
network renders on the CPU. Without a screen, run it under Xvfb: xvfb-run -s '-screen 0 1280x1024x24' python visualizer.py ...

--script=FILE drives the window from a command file (see viz/script.py): reproducible screenshots,
demos and tests.
"""

import os
import re
import sys

import click

import legacy
from viz import script as viz_script

GUI_INSTALL_HINT = 'python3 -m pip install -r requirements.txt (imgui-bundle, glfw and PyOpenGL)'


def parse_window_size(s):
    if isinstance(s, tuple):
        return s
    match = re.fullmatch(r'\s*(\d+)\s*[xX]\s*(\d+)\s*', s)
    if match is None or min(int(match.group(1)), int(match.group(2))) < 200:
        raise click.BadParameter(f'{s!r} is not of the form WIDTHxHEIGHT with both at least 200, e.g. 1280x800')
    return int(match.group(1)), int(match.group(2))


def _import_gui():
    """The GUI modules, or a one-line error naming what to install."""
    try:
        from gui_utils.gl_window import GlWindow, WindowError
        from viz.app import Visualizer
    except ImportError as e:
        missing = e.name or str(e)
        if e.name is not None and e.name.split('.')[0] not in ('imgui_bundle', 'glfw', 'OpenGL'):
            raise
        raise click.ClickException(f'the visualizer needs its GUI libraries ({missing} is missing or broken): '
                                   f'{GUI_INSTALL_HINT}') from None
    return GlWindow, WindowError, Visualizer


def _read_script(path):
    from viz.app import script_fields  # Only reached after _import_gui succeeded.
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise click.ClickException(f'--script: cannot read {path}: {e.strerror}')
    try:
        return viz_script.parse_script(text, script_fields())
    except viz_script.ScriptError as e:
        raise click.ClickException(f'--script: {path}: {e}')


def preload_compiler_stack():
    """Imports torch._dynamo (and with it Triton, where installed) before OpenGL starts. Loading a network safely
    runs meta-device operations, whose first use imports it; in the renderer thread, beside Mesa's software
    OpenGL, that import crashes the process (Triton and Mesa each bring their own LLVM)."""
    try:
        import torch._dynamo  # noqa: F401
    except Exception as e:  # The renderer thread will meet the same problem and show it; say so here too.
        print(f'warn: could not preload torch._dynamo ({type(e).__name__}: {e})', file=sys.stderr)


@click.command()
@click.argument('pkls', nargs=-1, metavar='[PKL|URL]...')
@click.option('--capture-dir', default='out', show_default=True, metavar='DIR',
              help='Where the Capture panel saves PNGs (and where relative script paths point)')
@click.option('--browse-dir', default='.', show_default=True, metavar='DIR',
              help='Folder the Pickle panel\'s browser starts in')
@click.option('--script', 'script_path', metavar='FILE', help='Command file that drives the window (see viz/script.py)')
@click.option('--window-size', type=parse_window_size, default='1280x800', show_default=True, metavar='WxH',
              help='Initial window size')
@legacy.trust_pickle_option
def main(pkls, capture_dir, browse_dir, script_path, window_size):
    """Open the visualizer on the network pickles PKL (the first is shown; all are in the recent list).

    \b
    Examples:
    \b
    # Explore two networks (the second one is a click away in Pickle > Recent).
    python visualizer.py stylegan3-t-ffhq-1024x1024.pkl network-snapshot-005000.pkl
    \b
    # Save a screenshot of seed 7 with truncation 0.7 and quit.
    printf 'set latent.seed=7 trunc.psi=0.7\\nwait\\nsave-window seed7.png\\nquit\\n' > shot.txt
    python visualizer.py --script=shot.txt --capture-dir=out ffhq.pkl
    """
    if not os.path.isdir(browse_dir):
        raise click.ClickException(f'--browse-dir: no such folder: {browse_dir}')
    GlWindow, WindowError, Visualizer = _import_gui()
    commands = _read_script(script_path) if script_path else None

    from viz.render_worker import RenderWorker
    preload_compiler_stack()
    try:
        window = GlWindow('StyleGAN visualizer', *window_size)
    except WindowError as e:
        raise click.ClickException(str(e))
    print(f'OpenGL: {window.gl_info}')
    worker = RenderWorker()
    runner = viz_script.ScriptRunner(commands) if commands is not None else None
    viz = Visualizer(window, worker, capture_dir=capture_dir, browse_dir=browse_dir, script_runner=runner)
    for pkl in reversed(pkls):  # The first one ends up current and at the top of the recent list.
        viz.load_pickle(pkl)
    try:
        while not window.should_close:
            viz.frame()
    except viz_script.ScriptError as e:
        raise click.ClickException(f'--script: {script_path}: {e}')
    except KeyboardInterrupt:
        print('Interrupted.', file=sys.stderr)
    finally:
        viz.close()
        worker.close()
        window.close()
    if runner is not None and viz.last_error is not None:
        raise click.ClickException(f'--script: {script_path} ran, but the window showed an error: {viz.last_error}')


if __name__ == '__main__':
    main()
