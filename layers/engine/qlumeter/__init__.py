"""qlumeter: exact, explainable metering of Qualys Units (QLUs)."""

__version__ = "0.1.0"
