"""Running the pipeline as a whole: worker processes (supervisor.py), how far it has got
(progress.py, from the broker alone), and the end-to-end demo (demo.py)."""
