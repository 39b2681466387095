"""A trained torch model -> NIR graph: the exporter (converter table, BN folding) and the equivalence check against
the reference interpreter."""
