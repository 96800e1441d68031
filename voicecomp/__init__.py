"""voicecomp: coupled recurrent models for polyphonic music composition in JAX."""

__version__ = "0.1.0"
