"""The conversion engine: declarative rules in, a source tree out, with reports.

Rules are data (``rules/*.yaml``). Each file is analysed with :mod:`ast` (fast, exact positions);
every rule family reports *edits* (byte ranges and their replacement) instead of mutating a tree,
and only the edited regions are re-generated, with :mod:`libcst` where formatting has to be kept
(import statements, argument lists). Bytes outside the edits are never touched.
"""

# Part of the rules hash, so of every cache key: bump it when the same input converts differently.
# 2: files in a non-UTF-8 encoding, and CR/CRLF files, convert correctly (1 cached them corrupted or failed).
ENGINE_VERSION = "2"
