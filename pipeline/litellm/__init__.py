"""Evidence for a LiteLLM proxy: its callback (callback.py) turns each proxy request into a signed
contract event; mapping.py (pure) says how."""
