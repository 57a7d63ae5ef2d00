"""vecmon: observability and SLO monitoring for vector-search and RAG stacks."""

__version__ = "0.1.0"
