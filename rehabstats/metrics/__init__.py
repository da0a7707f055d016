"""The metric families of the contract and the output files of ``rehabstats metrics``."""
