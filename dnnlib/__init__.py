"""Small, dependency-free helpers shared by every script (and by pickled network code)."""

from . import util
from .util import EasyDict, make_cache_dir_path
