"""The checkpoint signer: the only holder of the checkpoint key, in a process (and, in
docker-compose, an OS user) of its own, so that the chain worker's host alone cannot issue a
checkpoint. It signs only a tree that extends the one it signed last (core.py)."""
