"""The golden corpus: recorded runs that must replay byte-identically (see README.md here).

``golden.fixtures`` holds the code-node callables and tools the cases use; the cases
refer to them as ``golden.fixtures:<name>``.
"""
