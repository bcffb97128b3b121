"""Privacy at the node: disclosure policy and control, differential privacy, pseudonyms, extracts.

Everything here runs inside the hospital node, on every result, before anything leaves it.
"""
