"""Command-line helpers shared by the scripts: option types that refuse what would silently misbehave
(non-finite numbers), and checks of output locations made before any work starts."""

import math
import os
import tempfile

import click

# ----------------------------------------------------------------------------


class FiniteFloat(click.ParamType):
    """A float that must be finite (NaN and infinities refused), optionally within [min, max] (or open)."""
    name = 'float'

    def __init__(self, min=None, max=None, min_open=False, max_open=False):
        self.min, self.max, self.min_open, self.max_open = min, max, min_open, max_open

    def convert(self, value, param, ctx):
        if isinstance(value, float) and math.isfinite(value):
            number = value
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                self.fail(f'{value!r} is not a number', param, ctx)
        if not math.isfinite(number):
            self.fail(f'{value!r} is not a finite number', param, ctx)
        too_low = self.min is not None and (number <= self.min if self.min_open else number < self.min)
        too_high = self.max is not None and (number >= self.max if self.max_open else number > self.max)
        if too_low or too_high:
            low = '' if self.min is None else f'{"(" if self.min_open else "["}{self.min:g}'
            high = '' if self.max is None else f'{self.max:g}{")" if self.max_open else "]"}'
            self.fail(f'{value} is not in the range {low or "(-inf"}, {high or "inf)"}', param, ctx)
        return number

    def __repr__(self):
        return 'FiniteFloat'


class FiniteFloatList(click.ParamType):
    """A comma-separated list of one or more finite floats, each checked as FiniteFloat checks one."""
    name = 'list'

    def __init__(self, **bounds):
        self.element = FiniteFloat(**bounds)

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        if isinstance(value, (int, float)):
            return [self.element.convert(value, param, ctx)]
        parts = [part.strip() for part in str(value).split(',')]
        if '' in parts:
            self.fail(f'{value!r} is not a comma-separated list of numbers (an entry is empty)', param, ctx)
        return [self.element.convert(part, param, ctx) for part in parts]

    def __repr__(self):
        return 'FiniteFloatList'

# ----------------------------------------------------------------------------


def _nearest_existing(path):
    """The nearest existing ancestor of `path`, or `path` itself when it exists."""
    path = os.path.abspath(path)
    probe = path
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    return probe


def _write_problem(folder):
    """Why a file cannot be written in `folder` (permissions, a read-only mount, a full disk), or None. Writes
    and removes a small file: only that tells, whether or not the user is root."""
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix='.write-test-')
    except OSError as err:
        return err.strerror or str(err)
    try:
        os.write(fd, b'\0' * 4096)
        os.fsync(fd)
    except OSError as err:
        return err.strerror or str(err)
    finally:
        os.close(fd)
        os.remove(name)
    return None


def check_output_dir(path, option):
    """Refuses (click error, one line) an output folder that cannot be made or written; creates nothing."""
    if os.path.isfile(path):
        raise click.ClickException(f'{option}: {path} is a file, not a folder')
    existing = _nearest_existing(path)
    if not os.path.isdir(existing):
        raise click.ClickException(f'{option}: {path} cannot be a folder: {existing} is a file')
    problem = _write_problem(existing)
    if problem is not None:
        raise click.ClickException(f'{option}: cannot write in {existing} ({problem})')


def check_output_file(path, option, extensions=None):
    """Refuses (click error, one line) an output file that cannot be written where it is named, or whose
    extension is not one of `extensions` (lower case, with the dot); creates nothing."""
    if os.path.isdir(path):
        raise click.ClickException(f'{option}: {path} is a folder; name a file')
    if extensions is not None and os.path.splitext(path)[1].lower() not in extensions:
        raise click.ClickException(f'{option}: {path} does not end in {", ".join(sorted(extensions))}')
    check_output_dir(os.path.dirname(os.path.abspath(path)), option)

# ----------------------------------------------------------------------------
