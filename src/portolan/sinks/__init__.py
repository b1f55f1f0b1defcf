"""Sinks: where events go (the store, JSON lines, the collector, metrics, alerts).

Each module registers a :class:`~portolan.sinks.base.SinkSpec` in
:data:`~portolan.sinks.base.SINKS`.
"""
