"""repsim_jax: JAX kernels and Flax model ports for comparing layer representations.

Install (CPU):      pip install -e .
Tests and refs:     pip install -e ".[test]"   (pins the CPU build of torch 2.13.0)
torch reference:    pip install -e ".[torch]"  (compare_torch, pytorch_model.bin checkpoints,
                                               the torch backend: model entries backend="torch")
CUDA GPU / TPU:     see BUILD.md (install the matching jax[cuda12] / jax[tpu] first).
"""
import setuptools

setuptools.setup(
    name="repsim_jax",
    version="0.1.0",
    description=(
        "Information imbalance, CKA and friends between all layers of vision models, "
        "in JAX, with Flax NNX ports checked against transformers."
    ),
    # Only the library: experiments/ and configs/ stay at the top of the repository and run from
    # its root (python -m experiments.demo ...), as big_vision's do; installed, such generic
    # top-level names would collide with other research code in the same environment.
    packages=setuptools.find_packages(include=["repsim_jax", "repsim_jax.*"]),
    python_requires=">=3.10",
    install_requires=[
        "jax>=0.6",
        "flax>=0.11",
        "optax",
        "orbax-checkpoint",
        "numpy>=1.26",
        "scipy",  # t quantiles of the subsample intervals (jax needs it too)
        "absl-py",
        "ml_collections",
        "matplotlib",
        "ml_dtypes",
        "huggingface_hub",  # resolving hub ids in the local cache (never downloads at run time)
        "transformers>=4.56",  # config parsing and the torch reference; ports are ours
        "tensorstore",
        "pillow",
    ],
    extras_require={
        # Reference libraries the tests compare against. torch is pinned to the CPU build that
        # is on disk here; an unpinned torch pulls several GB of CUDA wheels.
        # DADApy pins jax==0.4.30/numpy<2, so it lives in its own venv: tests/reference/install_dadapy.sh
        "test": [
            "pytest",
            "safetensors",
            "torch==2.13.0",  # keep equal to the torch extra
            "scikit-image",
            "scikit-learn",
            "tensorflow-datasets",
            # Gröger et al.'s calibration (tests/metrics/test_measures.py); needs only torch
            "calibrated-similarity==0.1.1",
            "rsatoolbox==0.3.2",  # RSA's reference (its pins live beside ours: numpy 2, scipy)
        ],
        "tfds": ["tensorflow-datasets"],
        # The transformers torch reference (experiments.compare_torch), pytorch_model.bin
        # checkpoints and the torch backend (model entries with backend="torch": any
        # transformers vision checkpoint run by PyTorch); every JAX pipeline runs without it.
        "torch": ["torch==2.13.0"],
        # GPU: pip install -U "jax[cuda12]"; TPU: pip install -U "jax[tpu]" (see BUILD.md).
    },
)
