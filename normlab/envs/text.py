"""Shared pieces for envs whose observations carry a text rendering for LLM agents."""

import string

from gymnasium import spaces

#: Characters allowed in text observations (Gymnasium's Text space defaults to alphanumerics only).
TEXT_CHARSET = string.printable + "’‘“”–—…€£é"
#: Upper bound on the length of a text observation.
MAX_TEXT_LENGTH = 8192


def text_space(max_length: int = MAX_TEXT_LENGTH) -> spaces.Text:
    return spaces.Text(max_length=max_length, min_length=0, charset=TEXT_CHARSET)
