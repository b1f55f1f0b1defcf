"""``portolan top``: the terminal live view."""
