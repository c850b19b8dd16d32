"""Models x images -> activation stores on disk -> representations read as analyses need them.

  extract.py          `open_model` (a config's model entry, loaded), `extract` (one store, through
                      a `JaxBackend` or a `TorchBackend`), `numeric_path` (what the store records
                      of how its rows are rounded); every model of a config:
                      `repsim_jax.pipelines.extract.extract_stores`
  store.py            `ActivationStore`: chunked, resumable, one array per model x layer
  pooling.py          block outputs -> one vector (or a few tokens) per image, on device
  representations.py  `load_representations` (lazy `StoreLayers` through a
                      `LayerCache`), `early_middle_late`
  layer_files.py      `load_layers`: layers users bring (.npz, a folder of .npy, a store)
"""
