"""Portolan: who connects to your services, from where, and what they do."""

__version__ = "0.1.0"
