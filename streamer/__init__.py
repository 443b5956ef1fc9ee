"""headcast runtime: camera → tracker → motion → renderer → sink. Never imports torch."""

__version__ = "0.1.0"
