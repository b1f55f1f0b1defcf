"""Enrichment: what Portolan adds to an event (place, network), and privacy.

Each module registers an :class:`~portolan.enrich.base.EnricherSpec` in
:data:`~portolan.enrich.base.ENRICHERS`.
"""
