"""designer: a design studio for hybrid Mamba-Transformer language models."""
__version__ = "0.1.0"

# designer.hf registers its config.json reader with designer.layout (which imports nothing above itself)
from designer import hf as _hf  # noqa: E402,F401
