"""Language-model tooling: Sphinx binary trie -> ARPA, ARPA helpers, the LM build step."""
from .arpa import detect_case, write_arpa
from .sphinx_binary import NGramLM, cmu_en_us_lm_path, read_sphinx_trie

__all__ = ["NGramLM", "cmu_en_us_lm_path", "detect_case", "read_sphinx_trie", "write_arpa"]
