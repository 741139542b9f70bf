"""Training: the pooling-region simulator, training and evaluation pipelines, benchmark adapters."""
