"""Sources: where records come from (files, journald, syslog, programs, listener, capture).

Each module registers a :class:`~portolan.sources.base.SourceSpec` in
:data:`~portolan.sources.base.SOURCES`; the ``[[sources]]`` tables of the config name them by
``type``.
"""
