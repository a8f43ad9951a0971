"""One module per revision; file names start with the revision number."""
