"""napari-sam2: the napari plugin around sam2_model (layers <-> prompts, widgets, workers)."""
