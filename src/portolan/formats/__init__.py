"""Formats: text (or packets) in, Events out. Pure: no I/O, no clock of their own.

Each module registers one or more :class:`~portolan.formats.base.FormatSpec` in
:data:`~portolan.formats.base.FORMATS`.
"""
