"""The one exception type the library raises for bad input; the CLI turns it into one line."""


class ProdcatError(Exception):
    """A user-facing error: the message is one line saying what is wrong and how to fix it."""
