"""Characters: a bundle folder per character (:mod:`characters.bundle`) and the command that builds one from a
folder of BVH (``python -m characters.build``)."""

from characters.bundle import Character, CharacterError, load_character, shipped_characters

__all__ = ["Character", "CharacterError", "load_character", "shipped_characters"]
