"""The text side of LURE: task vocabulary and plans, canonical task texts, the request parser,
LLM prompt generation, the frozen sentence encoder and the bank of encoded texts.

Import the submodule you need (``lure.text.vocabulary``, ``lure.text.parser``, ...); this package
imports nothing itself, so reading the vocabulary never loads the sentence encoder or the LLM.
"""
