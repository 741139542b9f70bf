"""Serving: the ``yibao`` command line, the BentoML service, the clue store and evidence export."""
