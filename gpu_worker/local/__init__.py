"""Embedded mode: the trigger (watchdog on inbox/) and set-up for a one-machine deployment."""
