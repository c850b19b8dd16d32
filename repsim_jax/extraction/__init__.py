"""Models x images -> activation stores on disk -> representations read as analyses need them.

  extract.py          `open_model` (a config's model entry, loaded), `extract` (one store),
                      `extract_stores` (every model of a config; resumable, multi-host)
  store.py            `ActivationStore`: chunked, resumable, one array per model x layer
  pooling.py          block outputs -> one vector (or a few tokens) per image, on device
  representations.py  `ensure_stores`, `load_representations` (lazy `StoreLayers` through a
                      `LayerCache`), `early_middle_late`
  layer_files.py      `load_layers`: layers users bring (.npz, a folder of .npy, a store)
"""
