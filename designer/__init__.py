"""designer: a design studio for hybrid Mamba-Transformer language models."""
__version__ = "0.1.0"
