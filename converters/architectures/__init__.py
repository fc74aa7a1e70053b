"""Network definitions by name; importing this package registers every architecture."""
from . import h3r, pipnet, shr  # noqa: F401  (imported for their register() side effect)
from .registry import ArchSpec, UnknownArchitectureError, get_arch, list_archs, load_meanface, register

__all__ = ["ArchSpec", "UnknownArchitectureError", "get_arch", "list_archs", "load_meanface", "register"]
