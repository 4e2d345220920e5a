"""Framework infrastructure (stand-in): configs and decoder bases."""
