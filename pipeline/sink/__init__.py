"""See pipeline/__init__.py for where this step sits in the data path."""
