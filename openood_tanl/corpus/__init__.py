"""Negative-label word corpora (pure Python; no torch needed): see ``openood_tanl.corpus.corpus``.

Shipped data: ``wordnet_nouns.txt`` / ``wordnet_adjectives.txt`` (the ``wordnet`` corpus) and
``wordnet_all_lemmas_nouns.txt`` / ``wordnet_all_lemmas_adjectives.txt`` (``wordnet-all-lemmas``), built from
WordNet 3.0 by ``scripts/build_wordnet_corpus.py``; ``WORDNET_LICENSE.txt`` is WordNet's licence notice, which must
be redistributed with them.
"""
from .corpus import (
                     BUILTIN_CORPORA,
                     CORPUS_RULES,
                     CSP_EXCLUDED_FILES,
                     LICENSE_FILE,
                     Corpus,
                     CorpusWarning,
                     build_corpus,
                     load_corpus,
                     normalize_label,
                     parse_lines,
                     read_neglabel_folder,
                     read_text_file,
                     read_word_list,
                     wordnet_words,
)

__all__ = ["Corpus", "CorpusWarning", "load_corpus", "build_corpus", "read_word_list", "read_neglabel_folder",
           "wordnet_words", "normalize_label", "parse_lines", "read_text_file", "BUILTIN_CORPORA", "CORPUS_RULES",
           "CSP_EXCLUDED_FILES", "LICENSE_FILE"]
