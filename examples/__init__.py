"""Example applications that use Sidequest; run one with ``sidequest dev`` or ``make demo``."""
