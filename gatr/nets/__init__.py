from .gatr import GATr, GATrConfig

__all__ = ["GATr", "GATrConfig"]
