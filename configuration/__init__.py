from .configuration_vanilla_transformer import VanillaTransformerConfig

from .. import modeling as _registers_auto_classes  # noqa: E402,F401  (importing any of our packages registers all)

__all__ = ["VanillaTransformerConfig"]
