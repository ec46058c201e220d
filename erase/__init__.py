"""erase: machine unlearning for MRI reconstruction, after Xue et al., MIDL 2024."""
__version__ = "0.1.0"
