"""samizdat: keep verifiable news flowing when the internet is cut."""

__version__ = "0.1.0"
