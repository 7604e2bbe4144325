from . import resources  # noqa: F401
