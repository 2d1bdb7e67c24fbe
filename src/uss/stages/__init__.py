"""The pipeline's stages; each top-level script (main_pretrain.py, cluster.py, ...) calls one `main`."""
