"""Small helpers every stage shares: atomic file writes (``atomic``) and a dataclass as a command line
(``dataclass_cli``). Nothing here knows about motion, models or environments."""
