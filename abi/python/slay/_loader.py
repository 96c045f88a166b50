"""_loader.py -- finds and loads libslay.so when the package is imported.

Order (the first that loads wins):
  1. the file named by the environment variable SLAY_LIBRARY (if set, it must
     load: a typo there should not silently pick another library);
  2. the copy shipped inside the package (slay/libslay.so.*), present when the
     package was built with libslay compiled or bundled into it;
  3. the path recorded at build time (slay/_build_config.py, written by
     abi/python/meson.build from pkg-config libslay);
  4. the system loader (LD_LIBRARY_PATH, ld.so.cache) by SONAME, then by
     ctypes.util.find_library("slay").
Raises ImportError naming every place tried and why each failed.
"""
import ctypes.util
import glob
import os

from . import _abi

SONAME = "libslay.so.0.1"   # libslay 0.1's SONAME: ABI 1
REQUIRED_ABI_VERSION = 1    # this package uses the functions of slay.h ABI 1


def _candidates():
    """(description, path) pairs in search order, without the env variable."""
    here = os.path.dirname(os.path.abspath(__file__))
    for path in sorted(glob.glob(os.path.join(here, "libslay.so*"))):
        yield "shipped in the package", path
    try:
        from ._build_config import LIBRARY_PATH  # absent in the source tree
    except ImportError:
        LIBRARY_PATH = ""
    if LIBRARY_PATH:
        yield "recorded at build time", LIBRARY_PATH
    yield "system loader", SONAME
    found = ctypes.util.find_library("slay")
    if found:
        yield "ctypes.util.find_library", found


def _open_checked(path):
    lib = _abi.open_library(path)
    abi = lib.slay_get_abi_version()
    if abi < REQUIRED_ABI_VERSION:
        raise OSError(f"its ABI version is {abi}, this package needs >= {REQUIRED_ABI_VERSION}")
    return lib


def load():
    """Returns (ctypes library with signatures set, the path it was loaded from)."""
    explicit = os.environ.get("SLAY_LIBRARY")
    if explicit:
        try:
            return _open_checked(explicit), explicit
        except (OSError, AttributeError) as e:
            raise ImportError(f"slay: SLAY_LIBRARY={explicit!r} could not be loaded: {e}") from e
    tried = []
    for where, path in _candidates():
        try:
            return _open_checked(path), path
        except (OSError, AttributeError) as e:
            tried.append(f"  {where}: {path}: {e}")
    raise ImportError("slay: libslay could not be loaded. Tried:\n" + "\n".join(tried) +
                      "\nSet SLAY_LIBRARY=/path/to/libslay.so.0.1, or reinstall the package with libslay "
                      "installed (pkg-config libslay) or buildable from its source tree.")
