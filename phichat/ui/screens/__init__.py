"""Modal screens: help, source context, rename, confirm and export."""
