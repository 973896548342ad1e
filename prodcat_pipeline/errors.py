"""The exceptions the library raises for bad input or a bad cache; the CLI turns each into one line."""


class ProdcatError(Exception):
    """A user-facing error: the message is one line saying what is wrong and how to fix it."""


class CacheError(ProdcatError):
    """Something about the embedding cache on disk."""


class CacheMissing(CacheError):
    """No cache (or no row index for this dataset) yet: the one case that may trigger an encode."""


class CacheCorrupt(CacheError):
    """A cache file is damaged or belongs to something else: never rebuilt silently; the message names
    the file and how to repair it."""
