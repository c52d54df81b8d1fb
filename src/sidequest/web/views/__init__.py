"""One module per tab of the dashboard; each reads and acts only through ``sidequest.api``."""
